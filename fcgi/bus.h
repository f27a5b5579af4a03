#ifndef CHATD_BUS_H
#define CHATD_BUS_H

/*
 * Live events for WebSocket clients, published on Redis after the change is
 * committed. Channels: chatd:user:<user_id> reaches every connection of one
 * user, chatd:group:<group_id> every connection of a group's members. The
 * payload is the exact frame a client receives.
 *
 * Publishing never fails a request: the database is the truth and clients
 * recover with sync. A failure is logged; once Redis has failed, the rest of
 * the same batch is skipped so a dead Redis costs one timeout, not one each.
 *
 * Events of users and groups (fcgi/h_users.c, fcgi/h_groups.c):
 *   member_added   {"type","group_id","user_id"}  chatd:user:<user_id> and chatd:group:<group_id>
 *                  (a new group: on each member's user channel only)
 *   member_removed {"type","group_id","user_id"}  chatd:user:<user_id> and chatd:group:<group_id>
 *                  (a deleted group: on each member's user channel only, up to 5000 members)
 *   group_deleted  {"type","group_id"}            chatd:group:<group_id>
 *   member_role_changed {"type","group_id","user_id","role"}  chatd:group:<group_id>
 *                  (only when the role did change)
 *   online_status  {"type","user_id","is_online","last_seen"}  chatd:user:<id> of every user
 *                  who has the caller as a contact, chatd:group:<id> of every group the
 *                  caller is in (up to 5000 of each)
 */

struct arena;

/* Publishes payload on chatd:<kind>:<id> (kind "user" or "group"). Returns 0 or -1. */
int bus_publish(struct arena *a, const char *kind, const char *id, const char *payload);

/*
 * {"type":<type>,"group_id":<group_id>,"user_id":<user>} for each user of the
 * space-separated list users (ids as the database prints them): on the user's
 * channel, and also on the group's channel when to_group is set. Returns the
 * number of successful publishes.
 */
int bus_members(struct arena *a, const char *type, const char *group_id, const char *users,
                int to_group);

/*
 * Publishes payload on every channel named in the space-separated list
 * channels (full names, e.g. "chatd:user:<id> chatd:group:<id>"). Returns the
 * number of successful publishes.
 */
int bus_fanout(struct arena *a, const char *channels, const char *payload);

#endif
