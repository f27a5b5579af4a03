#ifndef CHATD_WS_SYNC_H
#define CHATD_WS_SYNC_H

#include <stdint.h>

struct json_object;
struct ws_conn;
struct ws_conn_frame;

/*
 * Replay (WS.md "sync"): every message c's user may see with seq > since,
 * oldest first, as `message` frames, in batches read on the user's lane and
 * fed to the out-queue as it drains, then {"type":"synced","last_seq":N}.
 * While it runs, live `message` events for c are held (ws_sync_hold) and
 * released at the end, minus those the replay sent (by message id). c must
 * be subscribed (ready) before the replay starts, so nothing falls between.
 * A replay that fails (database down) closes c with 1011 "Sync failed".
 */

/* The `sync` client message: {"type":"sync","since":<seq>}. Always completes at once (0). */
int ws_sync_cmd(struct ws_conn *c, struct json_object *msg);

/*
 * The startup replay (WS.md: a connection gets every event published after
 * its handshake). ws_sync_open() at the handshake, before c is linked to its
 * channels: from then on every event for c is held. ws_sync_begin() once
 * authenticated: replays above since (the client's ?since=, else the highest
 * seq when authenticating), reads once more after Redis confirmed all of c's
 * channels (ws_sync_confirmed), releases the held events minus the replayed
 * ones, and calls ws_proto_done(c). quiet: no `synced` frame at the end.
 */
void ws_sync_open(struct ws_conn *c);
void ws_sync_begin(struct ws_conn *c, long long since, int quiet);
/*
 * 1 while c's startup replay waits for authentication: every event, not only
 * messages, is held (none may reach a user before it is known active).
 */
int ws_sync_holds_all(const struct ws_conn *c);
/* One of c's channels was confirmed, or Redis went down: a waiting replay goes on. */
void ws_sync_confirmed(struct ws_conn *c);

/* Starts a replay above since (>= 0); answers an error when one is already running. */
void ws_sync_start(struct ws_conn *c, long long since);

/*
 * A live message frame f (id hash h) for c while its replay runs: takes a
 * reference and holds it. Too many held closes c with 1008 "Too slow" (the
 * client syncs again from its watermark).
 */
void ws_sync_hold(struct ws_conn *c, struct ws_conn_frame *f, uint64_t h);

/* c's out-queue drained: feed it more of the replay. Cheap when no replay runs. */
void ws_sync_pump(struct ws_conn *c);

/* Drops c's replay, if any, and everything it holds (ws_conn_release). */
void ws_sync_free(struct ws_conn *c);

#endif
