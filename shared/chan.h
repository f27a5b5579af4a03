#ifndef CHATD_CHAN_H
#define CHATD_CHAN_H

#include <stddef.h>

/*
 * The Redis protocol fcgi and wsd both speak, written once: channel names,
 * the head of a `message` frame and the rate-limit script. The payload of a
 * channel is exactly the frame a WebSocket client receives.
 */

/* Every connection of one user: chatd:user:<user_id>. */
#define CHAN_USER "chatd:user:"
/* Every connection of a group's members: chatd:group:<group_id>. */
#define CHAN_GROUP "chatd:group:"
/* New group messages as the old version published them, for outside subscribers. */
#define CHAN_LEGACY "chat:messages:"
/*
 * "A new message is committed": its seq as the payload. Every wsd instance
 * listens and reads the message log up to the stable position (ws_tail); a
 * lost tick only delays that read until the next poll.
 */
#define CHAN_TICK "chatd:tick"
/* The control channel every wsd instance listens on. */
#define CHAN_CTL "chatd:ctl"
/* Room for any prefix above and a UUID, with the NUL. */
#define CHAN_NAME_MAX 64
/* A `message` event: this, then the MessageRead object's members after its '{'. */
#define CHAN_FRAME_MESSAGE "{\"type\":\"message\","

/*
 * The fixed-window counter: KEYS[1] grows by ARGV[2] and, when it has no
 * expiry yet (this call created it), expires after ARGV[1] seconds. Returns
 * {count, ttl}. fcgi (rds_incrby_window) and wsd (ws_send) share it.
 */
extern const char chan_lua_window[];

/* prefix then id into buf (CHAN_NAME_MAX bytes); -1 when it does not fit. */
int chan_name(char buf[CHAN_NAME_MAX], const char *prefix, const char *id);

/*
 * The channels of a new message, each once: the group's (and, with legacy,
 * chat:messages:<group>) when group is set and not empty, else the
 * receiver's and the sender's user channels, one only for a message to
 * oneself. Returns how many were written to out (at most 2), -1 when an id
 * does not fit.
 */
int chan_conversation(char out[2][CHAN_NAME_MAX], const char *sender, const char *receiver,
                      const char *group, int legacy);

#endif
