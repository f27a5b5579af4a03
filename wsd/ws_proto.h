#ifndef CHATD_WS_PROTO_H
#define CHATD_WS_PROTO_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct ws_conn;

/* Where nginx forwards the WebSocket: /api/v1/ws/{user_id}. */
#define WS_PROTO_PATH "/api/v1/ws/"

/*
 * The vhost's protocols, NULL-terminated: one, serving both HTTP (404) and
 * the chat WebSocket. The context's user pointer must be the struct ws_srv.
 */
extern const struct lws_protocols ws_proto_protocols[];

/* lws's validity timers, off: ws_proto_sweep() pings and drops silent connections. */
extern const lws_retry_bo_t ws_proto_retry;

/*
 * Once a second (main.c): WS.md's ping of a connection silent for
 * WSD_PING_SECS, the drop of one silent for WSD_IDLE_HANGUP_SECS, and the
 * close of a connection whose token expired. O(connections) a second
 * instead of a timer per connection in lws's sorted list.
 */
void ws_proto_sweep(struct lws_context *ctx, uint64_t now_ms);

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
