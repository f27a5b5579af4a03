#ifndef CHATD_WS_AUTH_H
#define CHATD_WS_AUTH_H

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

#endif
