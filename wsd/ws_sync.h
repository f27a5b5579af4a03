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
