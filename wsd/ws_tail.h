#ifndef CHATD_WS_TAIL_H
#define CHATD_WS_TAIL_H

struct ws_srv;

/*
 * The instance's reader of the message log (README "The message path
 * without a deployment-wide lock"): a position T, and one chatd_tail(T, ...)
 * query at a time on a Postgres connection of its own, which returns the
 * stable position S and the messages T < seq <= S in seq order. Each row's
 * frame goes to the local connections of its conversation through the hub
 * (ws_hub_route_local); then T := S. Woken by chatd:tick (writers publish it
 * after COMMIT) and every WSD_TAIL_POLL_MS, so a lost tick or a Redis outage
 * only delays live delivery.
 */
struct ws_tail;

/*
 * Reads S once, blocking (start-up only, before any client is accepted), and
 * retries every half second while Postgres cannot answer. Returns S, or -1
 * when memory is short.
 */
long long ws_tail_initial(const char *url);

/*
 * A tail starting at pos, reading on its own connection to url, subscribed to
 * chatd:tick on srv->sub and routing to srv->hub. NULL when memory is short.
 * The caller owns it: ws_tail_stop(), run the loop until its handles are
 * closed, ws_tail_free().
 */
struct ws_tail *ws_tail_new(struct ws_srv *srv, const char *url, long long pos);

/*
 * T: every message with seq <= T was routed to the connections linked at the
 * time (a connection linked now receives every message above it live).
 */
long long ws_tail_pos(const struct ws_tail *t);

/*
 * Calls cb(arg) once T >= seq (at once when it already is), in seq order
 * among the waiters, and reads now so the wait is one tail round trip when
 * nothing lower is in flight. A client's own ack is a sync watermark only
 * once every lower seq is final, which is what T >= seq says. On
 * ws_tail_stop() the remaining waiters are called too (the message is
 * committed; the connection is going). Returns 0, or -1 when memory is short
 * (cb is not called then).
 */
typedef void (*ws_tail_wait_fn)(void *arg);
int ws_tail_wait(struct ws_tail *t, long long seq, ws_tail_wait_fn cb, void *arg);

/* Reads now (or right after the read in flight). */
void ws_tail_kick(struct ws_tail *t);

/* Stops the timer and the connection; queued reads fail. NULL is fine. */
void ws_tail_stop(struct ws_tail *t);
void ws_tail_free(struct ws_tail *t);

#endif
