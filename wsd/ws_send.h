#ifndef CHATD_WS_SEND_H
#define CHATD_WS_SEND_H

struct json_object;
struct ws_conn;

/*
 * The `message` client message (WS.md): {"type":"message","content",
 * "receiver_id"|"group_id","client_id"?,"media_url"?,"media_type"?}, with the
 * rules of POST /api/v1/messages (chatd_message_send() in
 * schema/0004_messages.sql, the same RATE_LIMIT_MESSAGES_PER_10S bucket).
 * On the user's lane: take the publish lock, store, publish the `message`
 * event (to both users' channels, or the group's and chat:messages:<gid>),
 * release the lock; then {"type":"ack","client_id","id","seq","created_at"}
 * to this connection, which never gets its own message back as an event.
 * Errors are `error` frames with the REST detail and the client_id.
 * Returns 1 (answered later, then ws_proto_done()) or 0 (answered now).
 */
int ws_send_cmd(struct ws_conn *c, struct json_object *msg);

#endif
