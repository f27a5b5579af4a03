#ifndef CHATD_WS_AUTH_H
#define CHATD_WS_AUTH_H

struct json_object;
struct lws;
struct ws_conn;

/*
 * The handshake, before the 101 (LWS_CALLBACK_HTTP_CONFIRM_UPGRADE): 0 to
 * accept, else the HTTP status to refuse with. WS.md: a {user_id} that is not
 * a UUID, or an Origin other than CORS_ORIGINS_STR and PUBLIC_URL, is 403; a
 * path other than /api/v1/ws/{user_id} is 404.
 */
unsigned ws_auth_upgrade_status(struct lws *wsi);

/*
 * After the 101 (LWS_CALLBACK_ESTABLISHED), with the handshake headers still
 * at hand: takes the user id, X-Request-Id and ?since= into c, checks the
 * access token (?token=, else the access_token cookie) and asks Postgres
 * whether the user is active and which groups they are in. Meanwhile c is
 * busy (client messages wait). Success: c is linked in the hub, counted
 * online, c->ready set, the replay of ?since= started and the waiting
 * messages run. Failure: c closes with 1008 and WS.md's reason.
 */
void ws_auth_start(struct ws_conn *c);

/* The token's exp has passed (ws_proto_sweep): closes with 1008 "Token expired" (WS.md). */
void ws_auth_expired(struct ws_conn *c);

/*
 * The `auth` frame {"type":"auth","token":<access token>}: a good token of
 * the same user, whose session is live, replaces the connection's (its sid
 * and exp) and is answered {"type":"authed","expires_at":<unix s>}; any other
 * closes with 1008 and the handshake's reasons. Returns 1 when the answer
 * comes later (ws_proto_done), 0 when done.
 */
int ws_auth_cmd(struct ws_conn *c, struct json_object *msg);

/* 1 for the internal events of the user's channel that ws_auth_on_event() handles. */
int ws_auth_is_event(const char *type);
/*
 * session_revoked {"keep_sid":<sid>|null,"sid"?:<sid>} closes c with 1008
 * "Session revoked" when c's session is not keep_sid (or, with "sid", is
 * that one); user_inactive closes it with 1008 "User inactive". These
 * events are never forwarded to clients.
 */
void ws_auth_on_event(struct ws_conn *c, const char *type, struct json_object *ev);

#endif
