#ifndef CHATD_WS_PROTO_H
#define CHATD_WS_PROTO_H

#include <libwebsockets.h>
#include <stddef.h>

struct ws_conn;

/* Where nginx forwards the WebSocket: /api/v1/ws/{user_id}. */
#define WS_PROTO_PATH "/api/v1/ws/"

/*
 * The vhost's protocols, NULL-terminated: one, serving both HTTP (404) and
 * the chat WebSocket. The context's user pointer must be the struct ws_srv.
 */
extern const struct lws_protocols ws_proto_protocols[];

/* WS.md: ping a connection silent for 30 s, drop it after 75 s without a pong. */
extern const lws_retry_bo_t ws_proto_retry;

/*
 * A command that answered later (it returned 1) is done: the client's next
 * waiting message runs. Also ends authentication. Safe from any callback.
 */
void ws_proto_done(struct ws_conn *c);

/*
 * Starts closing every connection of ctx's default vhost with 1001 and
 * refuses new upgrades (503). Calls drained(arg) once no connection is left:
 * at once when there is none, else from inside an lws callback, so drained
 * must not destroy the context itself (defer it to the loop).
 */
void ws_proto_going_away(struct lws_context *ctx, void (*drained)(void *), void *arg);

/* Number of open WebSocket connections of ctx's default vhost. */
unsigned ws_proto_count(struct lws_context *ctx);

/* ws_bus_fn for the control channel chatd:ctl (arg unused). */
void ws_proto_on_ctl(void *arg, const char *channel, const char *payload, size_t len);

#endif
