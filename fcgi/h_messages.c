/* /api/v1/messages, /api/v1/contacts/chats, /api/v1/conversations (API.md "Messages"). */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bus.h"
#include "chan.h"
#include "body.h"
#include "cfg.h"
#include "db.h"
#include "handlers.h"
#include "log.h"
#include "rds.h"
#include "req.h"
#include "resp.h"

#define MSG_CONTENT_MAX 5000

static struct db_stmt q_send = DB_STMT("SELECT status, detail, msg, pub, msg_seq"
                                       " FROM chatd_message_send($1, $2, $3, $4, $5, $6, $7)",
                                       7);
/* The stable position (schema/0015_seq_gate.sql): a statement of its own, before the page. */
static struct db_stmt q_stable = DB_STMT_IDEM("SELECT chatd_stable_seq()", 0);

/* Every seq below $1 final (schema/0018_wait_stable.sql); false when a wait timed out. */
static struct db_stmt q_wait_stable = DB_STMT_IDEM("SELECT chatd_wait_stable($1)", 1);

/* One page, newest first; `after` pages forward from the oldest side so no message is skipped. */
#define MSG_PAGE(where)                                                                            \
    "SELECT coalesce(json_agg(chatd_message_read(m, s, $1) ORDER BY m.seq DESC), '[]') FROM ("     \
    "  SELECT * FROM messages m WHERE " where                                                      \
    "  AND ($3::bigint IS NULL OR m.seq < $3) AND ($4::bigint IS NULL OR m.seq > $4)"              \
    "  AND ($7::bigint IS NULL OR m.seq <= $7)"                                                    \
    "  ORDER BY CASE WHEN $4::bigint IS NULL THEN -m.seq ELSE m.seq END"                           \
    "  LIMIT $5 OFFSET $6) m JOIN users s ON s.id = m.sender_id"

static struct db_stmt q_list_private = DB_STMT_IDEM(
    MSG_PAGE("m.group_id IS NULL AND least(m.sender_id, m.receiver_id) = least($1::uuid, $2::uuid)"
             " AND greatest(m.sender_id, m.receiver_id) = greatest($1::uuid, $2::uuid)"),
    7);
static struct db_stmt q_list_group =
    DB_STMT_IDEM(MSG_PAGE("m.group_id = $2 AND EXISTS (SELECT 1 FROM group_members gm"
                          " WHERE gm.group_id = $2 AND gm.user_id = $1)"),
                 7);
static struct db_stmt q_list_mine =
    DB_STMT_IDEM(MSG_PAGE("(m.sender_id = $1 OR m.receiver_id = $1) AND $2::uuid IS NULL"), 7);
static struct db_stmt q_is_member =
    DB_STMT_IDEM("SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2", 2);

/* Marks read (schema/0006_ws.sql, shared with the WebSocket `read` frame of wsd). */
static struct db_stmt q_read =
    DB_STMT("SELECT sender_id, read_at FROM chatd_message_mark_read($1, $2)", 2);
/*
 * The caller's own live message $1, and whether they may still change it: a
 * group message only while they are a member of the group (issue 8: leaving
 * used to keep the right to rewrite the group's history).
 */
#define MSG_OWN                                                                                    \
    "WITH m AS (SELECT x.id, (x.group_id IS NULL OR EXISTS (SELECT 1 FROM group_members gm"        \
    "             WHERE gm.group_id = x.group_id AND gm.user_id = $2)) AS member"                  \
    "           FROM messages x WHERE x.id = $1 AND x.sender_id = $2 AND x.deleted_at IS NULL) "
static struct db_stmt q_edit =
    DB_STMT(MSG_OWN ", u AS (UPDATE messages SET content = $3, edited_at = now() FROM m"
                    "       WHERE messages.id = m.id AND m.member RETURNING messages.*) "
                    "SELECT m.member, chatd_message_read(u, s, $2), u.receiver_id, u.group_id,"
                    "       chatd_message_read(u, s, NULL) "
                    "FROM m LEFT JOIN u ON true LEFT JOIN users s ON s.id = u.sender_id",
            3);
static struct db_stmt q_delete =
    DB_STMT(MSG_OWN ", d AS (UPDATE messages SET content = '', media_url = NULL, media_type = NULL,"
                    "        deleted_at = now() FROM m WHERE messages.id = m.id AND m.member"
                    "        RETURNING messages.seq, messages.receiver_id, messages.group_id) "
                    "SELECT m.member, d.seq, d.receiver_id, d.group_id FROM m LEFT JOIN d ON true",
            2);

/*
 * Publishes an event about a stored message (edit, delete) to the channels of
 * its conversation; the database stays the truth. New messages are not
 * published here: wsd reads them from the log (msg_announce).
 */
static void msg_publish(struct req *r, const char *receiver, const char *group, const char *frame)
{
    char chans[2][CHAN_NAME_MAX];
    int n = chan_conversation(chans, r->user->id, receiver ? receiver : "", group, 0);
    /* Once Redis failed, the rest is skipped: clients recover with sync. */
    for (int i = 0; frame && i < n && bus_fanout(r->a, chans[i], frame) == 1; i++)
        ;
}

/* {"type":"<type>", ...json object fields} without re-serialising the object. */
static const char *msg_frame(struct req *r, const char *type, const char *json)
{
    return arena_printf(r->a, "{\"type\":\"%s\",%s", type, json + 1);
}

static int msg_parse_send(struct req *r, const char **params)
{
    const char *content, *receiver, *group, *media_url, *media_type;
    int rc = body_str(r, "content", 1, MSG_CONTENT_MAX, BODY_REQUIRED, &content);
    if (!rc)
        rc = body_uuid(r, "receiver_id", BODY_NULLABLE, &receiver);
    if (!rc)
        rc = body_uuid(r, "group_id", BODY_NULLABLE, &group);
    if (!rc)
        rc = body_str(r, "media_url", 1, 500, BODY_NULLABLE, &media_url);
    if (!rc)
        rc = body_str(r, "media_type", 1, 20, BODY_NULLABLE, &media_type);
    if (rc)
        return rc;
    if (receiver && group)
        return req_invalid(r, "body", NULL, "Provide receiver_id or group_id, not both",
                           "value_error");
    if (!receiver && !group)
        return req_err(r, 400, "Either receiver_id or group_id must be provided");
    if (media_type && strcmp(media_type, "image") && strcmp(media_type, "video"))
        return req_invalid(r, "body", "media_type", "Input should be 'image' or 'video'", "enum");
    params[0] = r->user->id;
    params[1] = receiver;
    params[2] = group;
    params[3] = content;
    params[4] = media_url;
    params[5] = media_type;
    params[6] = cfg.public_url; /* media_url is anchored to it (0009_sessions.sql) */
    return 0;
}

/*
 * After COMMIT (the statement ran alone): wakes the wsd tails, which deliver
 * the message in seq order once every lower seq is final, and tells the old
 * version's outside subscribers of a group message (in commit order).
 */
static void msg_announce(struct req *r, const char *group, const char *seq, const char *frame)
{
    char legacy[CHAN_NAME_MAX];
    if (bus_fanout(r->a, CHAN_TICK, seq) == 1 && group && frame &&
        chan_name(legacy, CHAN_LEGACY, group) > 0)
        bus_fanout(r->a, legacy, frame);
}

/*
 * Before the 201: waits until every lower seq is final, so the seq answered
 * is a sync watermark (README.seqpath.md). The message is committed whatever
 * happens here, so a timeout or an error only costs the guarantee: logged,
 * never an error response.
 */
static void msg_wait_stable(struct req *r, const char *seq)
{
    enum db_err err;
    const char *params[] = {seq};
    PGresult *res = db_run(r->a, &q_wait_stable, params, &err);
    if (!res)
        log_warn("messages: waiting for the seqs below %s failed (error %d); answering 201 "
                 "without the watermark guarantee",
                 seq, (int)err);
    else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
        log_warn("messages: a writer below seq %s still in flight after DB_LOCK_TIMEOUT_MS; "
                 "answering 201 without the watermark guarantee",
                 seq);
}

int h_msg_send(struct req *r)
{
    const char *params[7];
    const char *key = arena_printf(r->a, "rl:msg:%s", r->user->id);
    int rc = auth_rate_limit(r, key, cfg.rate_messages_per_10s, 10);
    if (rc || (rc = msg_parse_send(r, params)))
        return rc;
    enum db_err err;
    PGresult *res = db_run(r->a, &q_send, params, &err);
    if (!res)
        return resp_db_err(r, err);
    int status = atoi(PQgetvalue(res, 0, 0));
    if (status == 201) {
        msg_announce(r, params[2], PQgetvalue(res, 0, 4),
                     msg_frame(r, "message", PQgetvalue(res, 0, 3)));
        msg_wait_stable(r, PQgetvalue(res, 0, 4));
    }
    if (status == 422)
        return req_invalid(r, "body", "media_url", PQgetvalue(res, 0, 1), "value_error");
    if (status != 201)
        return req_err(r, status, PQgetvalue(res, 0, 1));
    const char *json = PQgetvalue(res, 0, 2);
    return resp_raw(r, 201, "application/json", json, strlen(json));
}

static int msg_list_params(struct req *r, const char **p)
{
    static const char *const names[] = {"before", "after", "limit", "offset"};
    static const long lo[] = {0, 0, 1, 0}, hi[] = {1L << 62, 1L << 62, 100, 100000};
    static const long def[] = {-1, -1, 50, 0};
    for (int i = 0; i < 4; i++) {
        long v;
        int rc = req_query_long(r, names[i], lo[i], hi[i], def[i], &v);
        if (rc)
            return rc;
        p[2 + i] = v < 0 ? NULL : arena_printf(r->a, "%ld", v);
    }
    return 0;
}

/*
 * after= pages forward: bounded by the stable position, read before the page
 * (its own snapshot), so a seq above a hole that may still fill is never
 * handed out as a cursor. *stable stays NULL without after=.
 */
static int msg_stable(struct req *r, const char *after, const char **stable)
{
    enum db_err err;
    *stable = NULL;
    if (!after)
        return 0;
    PGresult *res = db_run(r->a, &q_stable, NULL, &err);
    if (!res)
        return resp_db_err(r, err);
    *stable = PQgetvalue(res, 0, 0);
    return 0;
}

int h_msg_list(struct req *r)
{
    const char *p[7] = {r->user->id};
    const char *receiver, *group;
    int rc = req_query_uuid(r, "receiver_id", &receiver);
    if (!rc)
        rc = req_query_uuid(r, "group_id", &group);
    if (!rc)
        rc = msg_list_params(r, p);
    if (rc)
        return rc;
    struct db_stmt *q = receiver ? &q_list_private : group ? &q_list_group : &q_list_mine;
    p[1] = receiver ? receiver : group;
    enum db_err err;
    if (group && !receiver) {
        const char *mp[] = {group, r->user->id};
        PGresult *m = db_run(r->a, &q_is_member, mp, &err);
        if (!m)
            return resp_db_err(r, err);
        if (!PQntuples(m))
            return req_err(r, 403, "You are not a member of this group");
    }
    if ((rc = msg_stable(r, p[3], &p[6])))
        return rc;
    PGresult *res = db_run(r->a, q, p, &err);
    if (!res)
        return resp_db_err(r, err);
    return resp_raw(r, 200, "application/json", PQgetvalue(res, 0, 0),
                    (size_t)PQgetlength(res, 0, 0));
}

int h_msg_read(struct req *r)
{
    const char *p[] = {r->params[0], r->user->id};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_read, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (!PQntuples(res))
        return req_err(r, 404, "Message not found");
    const char *frame = arena_printf(
        r->a, "{\"type\":\"read\",\"message_id\":\"%s\",\"reader_id\":\"%s\",\"read_at\":\"%s\"}",
        r->params[0], r->user->id, PQgetvalue(res, 0, 1));
    if (frame)
        bus_publish(r->a, "user", PQgetvalue(res, 0, 0), frame);
    return resp_raw(r, 204, NULL, NULL, 0);
}

/* 0 when the MSG_OWN statement changed the message, else the error answered. */
static int msg_own_status(struct req *r, PGresult *res)
{
    if (!PQntuples(res))
        return req_err(r, 404, "Message not found");
    if (PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 403, "You are not a member of this group");
    return 0;
}

int h_msg_edit(struct req *r)
{
    const char *content;
    int rc = body_str(r, "content", 1, MSG_CONTENT_MAX, BODY_REQUIRED, &content);
    if (rc)
        return rc;
    const char *p[] = {r->params[0], r->user->id, content};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_edit, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if ((rc = msg_own_status(r, res)))
        return rc;
    const char *json = PQgetvalue(res, 0, 1);
    msg_publish(r, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
                msg_frame(r, "message_updated", PQgetvalue(res, 0, 4)));
    return resp_raw(r, 200, "application/json", json, strlen(json));
}

int h_msg_delete(struct req *r)
{
    const char *p[] = {r->params[0], r->user->id};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_delete, p, &err);
    if (!res)
        return resp_db_err(r, err);
    int rc = msg_own_status(r, res);
    if (rc)
        return rc;
    const char *frame =
        arena_printf(r->a, "{\"type\":\"message_deleted\",\"id\":\"%s\",\"seq\":%s}", r->params[0],
                     PQgetvalue(res, 0, 1));
    msg_publish(r, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), frame);
    return resp_raw(r, 204, NULL, NULL, 0);
}

static struct db_stmt q_chats = DB_STMT_IDEM(
    "WITH unread AS (SELECT sender_id AS partner, count(*) AS n FROM messages"
    "  WHERE receiver_id = $1 AND NOT is_read AND deleted_at IS NULL GROUP BY sender_id), "
    "page AS (SELECT * FROM chatd_private_last($1) ORDER BY (msg).seq DESC LIMIT $2 OFFSET $3) "
    "SELECT coalesce(json_agg(json_build_object("
    "  'id', p.partner, 'user', chatd_user_public(u, false),"
    "  'last_message', json_build_object('id', (p.msg).id, 'content', (p.msg).content,"
    "    'sender_id', (p.msg).sender_id, 'receiver_id', (p.msg).receiver_id,"
    "    'media_url', (p.msg).media_url, 'media_type', (p.msg).media_type,"
    "    'is_read', (p.msg).is_read, 'created_at', chatd_ts((p.msg).created_at)),"
    "  'unread_count', coalesce(un.n, 0),"
    "  'is_contact', EXISTS (SELECT 1 FROM contacts c WHERE c.user_id = $1"
    "                        AND c.contact_id = p.partner))"
    "  ORDER BY (p.msg).seq DESC), '[]') "
    "FROM page p JOIN users u ON u.id = p.partner LEFT JOIN unread un ON un.partner = p.partner",
    3);

static struct db_stmt q_inbox = DB_STMT_IDEM(
    "WITH unread AS (SELECT sender_id AS partner, count(*) AS n FROM messages"
    "  WHERE receiver_id = $1 AND NOT is_read AND deleted_at IS NULL GROUP BY sender_id), "
    "priv AS (SELECT (p.msg).seq AS seq, json_build_object('kind', 'user',"
    "    'peer', chatd_user_public(u, false),"
    "    'last_message', chatd_message_read(p.msg, s, $1),"
    "    'unread_count', coalesce(un.n, 0)) AS row"
    "  FROM chatd_private_last($1) p JOIN users u ON u.id = p.partner"
    "  JOIN users s ON s.id = (p.msg).sender_id LEFT JOIN unread un ON un.partner = p.partner), "
    "grp AS (SELECT coalesce(lm.seq, 0) AS seq, json_build_object('kind', 'group',"
    "    'group', json_build_object('id', g.id, 'name', g.name, 'avatar_url', g.avatar_url),"
    "    'last_message', CASE WHEN lm.id IS NULL THEN NULL"
    "                    ELSE chatd_message_read(lm, s, $1) END,"
    "    'unread_count', chatd_group_unread(g.id, $1, 1000)) AS row"
    "  FROM group_members gm JOIN groups g ON g.id = gm.group_id"
    "  LEFT JOIN LATERAL (SELECT * FROM messages m WHERE m.group_id = g.id"
    "                     ORDER BY m.seq DESC LIMIT 1) lm ON true"
    "  LEFT JOIN users s ON s.id = lm.sender_id"
    "  WHERE gm.user_id = $1) "
    "SELECT coalesce(json_agg(row ORDER BY seq DESC), '[]') FROM ("
    "  SELECT * FROM (SELECT * FROM priv UNION ALL SELECT * FROM grp) a"
    "  ORDER BY seq DESC LIMIT $2 OFFSET $3) page",
    3);

static int msg_page(struct req *r, struct db_stmt *q)
{
    const char *limit, *offset;
    int rc = req_page(r, &limit, &offset);
    if (rc)
        return rc;
    const char *p[] = {r->user->id, limit, offset};
    enum db_err err;
    PGresult *res = db_run(r->a, q, p, &err);
    if (!res)
        return resp_db_err(r, err);
    return resp_raw(r, 200, "application/json", PQgetvalue(res, 0, 0),
                    (size_t)PQgetlength(res, 0, 0));
}

int h_msg_chats(struct req *r)
{
    return msg_page(r, &q_chats);
}

int h_msg_conversations(struct req *r)
{
    return msg_page(r, &q_inbox);
}
