#ifndef CHATD_WS_CMD_H
#define CHATD_WS_CMD_H

#include <stddef.h>

struct json_object;
struct ws_conn;

/*
 * Client messages of WS.md other than `message` and `sync`, and the field
 * checks they share. A handler returns 0 when it has answered, or 1 when the
 * answer comes later from a callback, which then calls ws_proto_done(c).
 * Every failure is an `error` frame; the connection stays open.
 */
int ws_cmd_ping(struct ws_conn *c, struct json_object *msg);
int ws_cmd_join(struct ws_conn *c, struct json_object *msg);
int ws_cmd_leave(struct ws_conn *c, struct json_object *msg);
int ws_cmd_typing(struct ws_conn *c, struct json_object *msg);
int ws_cmd_read(struct ws_conn *c, struct json_object *msg);

/*
 * Optional string field key of msg with 1..max characters (UTF-8), no NUL:
 * 0 with *out NULL when absent or null, 0 with *out set, or -1 after
 * answering an error naming the field (client_id added to it when not NULL).
 */
int ws_cmd_str(struct ws_conn *c, struct json_object *msg, const char *key, size_t max,
               const char **out, struct json_object *client_id);

/*
 * Optional UUID field key into out[37], lower-cased ("" when absent or
 * null); -1 after answering an error.
 */
int ws_cmd_uuid(struct ws_conn *c, struct json_object *msg, const char *key, char out[37],
                struct json_object *client_id);

/*
 * Exactly one of receiver_id and group_id (POST /api/v1/messages's rule),
 * each into its buffer ("" for the other). -1 after answering an error.
 */
int ws_cmd_target(struct ws_conn *c, struct json_object *msg, char receiver[37], char group[37],
                  struct json_object *client_id);

#endif
