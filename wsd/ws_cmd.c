#include "ws_cmd.h"

#include "log.h"
#include "str.h"
#include "chan.h"
#include "ws_bus.h"
#include "ws_conn.h"
#include "ws_hub.h"
#include "ws_proto.h"
#include "ws_srv.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

static const char ws_cmd_member_sql[] = "SELECT $1::uuid::text, EXISTS (SELECT 1 FROM group_members"
                                        " WHERE group_id = $1::uuid AND user_id = $2::uuid)";
/* The message id comes back as a column: the callback has nothing else to build the event. */
static const char ws_cmd_read_sql[] =
    "SELECT sender_id, read_at, $1::uuid::text FROM chatd_message_mark_read($1::uuid, $2::uuid)";

static void ws_cmd_field_error(struct ws_conn *c, const char *key, const char *what,
                               struct json_object *client_id)
{
    char buf[160];
    snprintf(buf, sizeof(buf), "%s: %s", key, what);
    ws_conn_error(c, buf, client_id);
}

int ws_cmd_str(struct ws_conn *c, struct json_object *msg, const char *key, size_t max,
               const char **out, struct json_object *client_id)
{
    struct json_object *v;
    char what[64];
    *out = NULL;
    if (!json_object_object_get_ex(msg, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_string)) {
        ws_cmd_field_error(c, key, "Input should be a valid string", client_id);
        return -1;
    }
    const char *s = json_object_get_string(v);
    size_t n = str_utf8_len(s);
    if ((size_t)json_object_get_string_len(v) != strlen(s)) {
        ws_cmd_field_error(c, key, "String should not contain NUL", client_id);
        return -1;
    }
    if (n < 1 || n > max) {
        if (n < 1)
            snprintf(what, sizeof(what), "String should have at least 1 character");
        else
            snprintf(what, sizeof(what), "String should have at most %zu characters", max);
        ws_cmd_field_error(c, key, what, client_id);
        return -1;
    }
    *out = s;
    return 0;
}

int ws_cmd_uuid(struct ws_conn *c, struct json_object *msg, const char *key, char out[37],
                struct json_object *client_id)
{
    const char *s;
    out[0] = '\0';
    if (ws_cmd_str(c, msg, key, 64, &s, client_id) < 0)
        return -1;
    if (!s)
        return 0;
    if (!str_is_uuid(s)) {
        ws_cmd_field_error(c, key, "Input should be a valid UUID", client_id);
        return -1;
    }
    for (int i = 0; i <= 36; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    return 0;
}

int ws_cmd_target(struct ws_conn *c, struct json_object *msg, char receiver[37], char group[37],
                  struct json_object *client_id)
{
    if (ws_cmd_uuid(c, msg, "receiver_id", receiver, client_id) < 0 ||
        ws_cmd_uuid(c, msg, "group_id", group, client_id) < 0)
        return -1;
    if (*receiver && *group) {
        ws_conn_error(c, "Provide receiver_id or group_id, not both", client_id);
        return -1;
    }
    if (!*receiver && !*group) {
        ws_conn_error(c, "Either receiver_id or group_id must be provided", client_id);
        return -1;
    }
    return 0;
}

/* A required UUID field; -1 after answering an error. */
static int ws_cmd_need_uuid(struct ws_conn *c, struct json_object *msg, const char *key,
                            char out[37])
{
    if (ws_cmd_uuid(c, msg, key, out, NULL) < 0)
        return -1;
    if (!*out) {
        ws_cmd_field_error(c, key, "Field required", NULL);
        return -1;
    }
    return 0;
}

int ws_cmd_ping(struct ws_conn *c, struct json_object *msg)
{
    static const char pong[] = "{\"type\":\"pong\"}";
    (void)msg;
    ws_conn_send(c, pong, sizeof(pong) - 1);
    return 0;
}

/* {"type":type,"group_id":gid} */
static void ws_cmd_group_reply(struct ws_conn *c, const char *type, const char *gid)
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "{\"type\":\"%s\",\"group_id\":\"%s\"}", type, gid);
    ws_conn_send(c, buf, (size_t)n);
}

static void ws_cmd_on_member(struct ws_conn *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        ws_conn_error(c, "Database unavailable", NULL);
    } else {
        const char *gid = PQgetvalue(res, 0, 0);
        if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
            ws_conn_error(c, "You are not a member of this group", NULL);
        else if (ws_hub_join(c->srv->hub, c, gid) < 0)
            ws_conn_error(c, "Out of memory", NULL);
        else
            ws_cmd_group_reply(c, "joined_group", gid);
    }
    ws_proto_done(c);
}

int ws_cmd_join(struct ws_conn *c, struct json_object *msg)
{
    char gid[37];
    if (ws_cmd_need_uuid(c, msg, "group_id", gid) < 0)
        return 0;
    const char *params[] = {gid, c->user_id};
    if (ws_conn_query(c, ws_cmd_member_sql, 2, params, ws_cmd_on_member) < 0) {
        ws_conn_error(c, "Server busy", NULL);
        return 0;
    }
    return 1;
}

int ws_cmd_leave(struct ws_conn *c, struct json_object *msg)
{
    char gid[37];
    if (ws_cmd_need_uuid(c, msg, "group_id", gid) < 0)
        return 0;
    ws_hub_leave(c, gid);
    ws_cmd_group_reply(c, "left_group", gid);
    return 0;
}

/* {"type":"typing","user_id":me,"receiver_id"|"group_id":id} on that user's or group's channel. */
int ws_cmd_typing(struct ws_conn *c, struct json_object *msg)
{
    char receiver[37], group[37], chan[64], frame[192];
    if (ws_cmd_target(c, msg, receiver, group, NULL) < 0)
        return 0;
    if (*group && !ws_hub_in_group(c, group)) {
        ws_conn_error(c, "You are not a member of this group", NULL);
        return 0;
    }
    const char *id = *group ? group : receiver;
    /* Receiver and group ids are distinct UUIDs: one throttle key space is enough. */
    if (!ws_conn_typing_ok(c, ws_conn_hash(id, strlen(id)), uv_now(c->srv->loop)))
        return 0;
    chan_name(chan, *group ? CHAN_GROUP : CHAN_USER, id);
    int n = snprintf(frame, sizeof(frame), "{\"type\":\"typing\",\"user_id\":\"%s\",\"%s\":\"%s\"}",
                     c->user_id, *group ? "group_id" : "receiver_id", id);
    if (ws_bus_publish(c->srv->cmd, chan, frame, (size_t)n, NULL, NULL) < 0)
        log_debug("ws: typing not relayed (redis down)");
    return 0;
}

static void ws_cmd_on_read(struct ws_conn *c, PGresult *res)
{
    char chan[64], frame[256];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ws_conn_error(c, "Database unavailable", NULL);
    } else if (PQntuples(res) != 1) {
        ws_conn_error(c, "Message not found", NULL);
    } else {
        chan_name(chan, CHAN_USER, PQgetvalue(res, 0, 0));
        int n = snprintf(
            frame, sizeof(frame),
            "{\"type\":\"read\",\"message_id\":\"%s\",\"reader_id\":\"%s\",\"read_at\":\"%s\"}",
            PQgetvalue(res, 0, 2), c->user_id, PQgetvalue(res, 0, 1));
        if (ws_bus_publish(c->srv->cmd, chan, frame, (size_t)n, NULL, NULL) < 0)
            log_warn("bus: publish to %s failed; clients recover with sync", chan);
    }
    ws_proto_done(c);
}

int ws_cmd_read(struct ws_conn *c, struct json_object *msg)
{
    char id[37];
    if (ws_cmd_need_uuid(c, msg, "message_id", id) < 0)
        return 0;
    const char *params[] = {id, c->user_id};
    if (ws_conn_query(c, ws_cmd_read_sql, 2, params, ws_cmd_on_read) < 0) {
        ws_conn_error(c, "Server busy", NULL);
        return 0;
    }
    return 1;
}
