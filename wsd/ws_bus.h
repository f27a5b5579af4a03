#ifndef CHATD_WS_BUS_H
#define CHATD_WS_BUS_H

#include "chan.h"

#include <stddef.h>
#include <uv.h>

/* The control channel every wsd instance listens on. */
#define WS_BUS_CTL_CHANNEL CHAN_CTL

/*
 * Receives one published message. channel and payload are only valid during
 * the call; payload is not NUL-terminated. The handler may subscribe or
 * unsubscribe anything, its own channel included.
 */
typedef void ws_bus_fn(void *arg, const char *channel, const char *payload, size_t len);

/* Called on every change of state: up = 1 once all channels are subscribed, 0 when lost. */
typedef void ws_bus_state_fn(void *arg, int up);

struct ws_bus;
struct redisReply;

/*
 * Starts the Redis pub/sub connection of url (redis://[:pw@]host[:port][/db])
 * on loop. Never blocks: names are resolved on the libuv thread pool, connects
 * are asynchronous, and a lost connection is retried with a backoff of 200 ms
 * doubling to 2 s, then every channel is subscribed again. Returns NULL when
 * url is malformed or memory is short. The caller owns the result: call
 * ws_bus_stop(), let the loop run until its handles are closed, then
 * ws_bus_free().
 */
struct ws_bus *ws_bus_new(uv_loop_t *loop, const char *url);

/* Sets the state observer (NULL to clear). */
void ws_bus_on_state(struct ws_bus *b, ws_bus_state_fn *fn, void *arg);

/*
 * Routes channel to fn(arg, ...). The registration outlives reconnects. A
 * channel already routed to the same fn and arg gains a reference (each
 * subscribe needs one unsubscribe); routed elsewhere, -1. Also -1 when out of
 * memory. Works whether or not Redis is up.
 */
int ws_bus_subscribe(struct ws_bus *b, const char *channel, ws_bus_fn *fn, void *arg);

/* Drops one reference; the last one unsubscribes. -1 when channel is not subscribed. */
int ws_bus_unsubscribe(struct ws_bus *b, const char *channel);

/*
 * 1 when Redis confirmed channel's subscription on the current connection:
 * every event published on it from then on reaches its handler.
 */
int ws_bus_confirmed(const struct ws_bus *b, const char *channel);

/* Called with the channel name each time Redis confirms a SUBSCRIBE (NULL to clear). */
typedef void ws_bus_confirm_fn(void *arg, const char *channel);
void ws_bus_on_confirm(struct ws_bus *b, ws_bus_confirm_fn *fn, void *arg);

/*
 * Writes the queued commands (SUBSCRIBEs) to Redis now rather than at the next
 * loop turn. Not from inside a Redis callback.
 */
void ws_bus_flush(struct ws_bus *b);

/* 1 when connected and every channel is subscribed. */
int ws_bus_is_up(const struct ws_bus *b);

/* Number of subscribed channels. */
size_t ws_bus_count(const struct ws_bus *b);

/*
 * A second connection of the same kind carries commands (a subscribed Redis
 * connection cannot PUBLISH): ws_bus_new() it again and use only these.
 * fn gets the reply, or NULL when the command failed (connection lost or
 * down); the reply is freed after fn returns. fn may be NULL. Returns 0, or
 * -1 when the connection is down (fn is then not called).
 */
typedef void ws_bus_reply_fn(void *arg, const struct redisReply *reply);
int ws_bus_command(struct ws_bus *b, ws_bus_reply_fn *fn, void *arg, const char *fmt, ...);
int ws_bus_publish(struct ws_bus *b, const char *channel, const char *payload, size_t len,
                   ws_bus_reply_fn *fn, void *arg);

/* Disconnects and stops retrying; the loop then closes the bus's handles. */
void ws_bus_stop(struct ws_bus *b);

/* Frees b and its routes, after ws_bus_stop() and the loop has run. NULL is fine. */
void ws_bus_free(struct ws_bus *b);

#endif
