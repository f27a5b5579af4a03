#ifndef CHATD_WS_PRESENCE_H
#define CHATD_WS_PRESENCE_H

#include <uv.h>

struct ws_bus;
struct ws_db;

/*
 * Presence across every wsd instance, kept in Redis (README "Presence"):
 * a user is online from their first connection on any instance to their last.
 * Each instance announces itself with a heartbeat key that expires 30 s after
 * its last refresh; every instance sweeps the users of instances whose
 * heartbeat is gone, so users of a killed instance go offline within ~45 s.
 * Changes are coalesced: an instance flushes them at most once per
 * WSD_PRESENCE_COALESCE_MS (the first after a quiet interval at once), with
 * one Redis script for all of them, one Postgres statement for the
 * transitions (chatd_set_online_batch, schema/0016_presence_batch.sql) and one
 * frame per channel: online_status for a single change, else presence
 * (README "Presence").
 */
struct ws_presence;

/* cmd: a command ws_bus (not the subscriber); db: the Postgres lanes. Never NULL args. */
struct ws_presence *ws_presence_new(uv_loop_t *loop, struct ws_bus *cmd, struct ws_db *db);

/* An authenticated connection of user_id opened / closed on this instance (never blocks). */
void ws_presence_open(struct ws_presence *p, const char *user_id);
void ws_presence_close(struct ws_presence *p, const char *user_id);

/* This instance's id (a random UUID chosen at start). */
const char *ws_presence_instance(const struct ws_presence *p);

/*
 * Stops the timers; with graceful set, this instance's users are marked gone
 * at once (a clean shutdown does not wait for the sweep). Then run the loop
 * and ws_presence_free().
 */
void ws_presence_stop(struct ws_presence *p, int graceful);
void ws_presence_free(struct ws_presence *p);

#endif
