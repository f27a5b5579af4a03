#ifndef CHATD_WS_HUB_H
#define CHATD_WS_HUB_H

#include <stddef.h>

struct ws_bus;
struct ws_conn;

/*
 * The authenticated connections of this instance by Redis channel:
 * chatd:user:<id> reaches every connection of that user, chatd:group:<id>
 * every connection of the group's members. The hub holds one subscription
 * per channel any local connection needs, and forwards each payload (the
 * client frame itself) to the connections concerned, one shared frame for
 * all. It also follows membership events: member_added on a user's channel
 * adds the group to that user's connections, member_removed and
 * group_deleted take it away.
 */
struct ws_hub;

/* A hub subscribing on sub (the pub/sub ws_bus). NULL when memory is short. */
struct ws_hub *ws_hub_new(struct ws_bus *sub);
/* Postgres for the membership re-check after Redis comes back (see ws_hub.c). */
struct ws_db;
void ws_hub_use_db(struct ws_hub *h, struct ws_db *db);
/* Frees the hub; every connection must have been removed. NULL is fine. */
void ws_hub_free(struct ws_hub *h);

/*
 * Links an authenticated connection to its user's channel and to the groups
 * in the space-separated list groups (may be NULL). Returns 0, or -1 when
 * memory is short (c is then partly linked; ws_hub_remove() cleans up).
 */
int ws_hub_add(struct ws_hub *h, struct ws_conn *c, const char *groups);
/*
 * 1 when Redis confirmed every channel c is linked to (or Redis is down, so
 * there is nothing to wait for): from then on c misses no live event.
 */
int ws_hub_confirmed(const struct ws_hub *h, const struct ws_conn *c);
/* Unlinks c from every channel; the last local link of a channel unsubscribes it. */
void ws_hub_remove(struct ws_hub *h, struct ws_conn *c);

/* Open connections of user uid on this instance (linked and not closing). */
unsigned ws_hub_user_conns(const struct ws_hub *h, const char *uid);

/* 1 when c receives group gid (it is a member as far as this instance knows). */
int ws_hub_in_group(const struct ws_conn *c, const char *gid);
/* join_group: c receives gid's events again (linked anew when needed). 0, or -1 out of memory. */
int ws_hub_join(struct ws_hub *h, struct ws_conn *c, const char *gid);
/* leave_group: c stops receiving gid's events; its other connections are not affected. */
void ws_hub_leave(struct ws_conn *c, const char *gid);

/*
 * A frame that did not come from Redis (ws_tail: a message read from the
 * log), delivered to the local connections of channel exactly as a payload
 * published there: the same per-connection dedup of seen ids and the same
 * hold while a replay runs. A channel no local connection is on is a no-op.
 */
void ws_hub_route_local(struct ws_hub *h, const char *channel, const char *frame, size_t len);

/* Number of channels the hub holds (for logs and tests). */
size_t ws_hub_count(const struct ws_hub *h);

#endif
