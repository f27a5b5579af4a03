#include "chan.h"

#include <stdio.h>
#include <string.h>

const char chan_lua_window[] =
    "local n = redis.call('INCRBY', KEYS[1], ARGV[2]) "
    "if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end "
    "return {n, redis.call('TTL', KEYS[1])}";

int chan_name(char buf[CHAN_NAME_MAX], const char *prefix, const char *id)
{
    int n = snprintf(buf, CHAN_NAME_MAX, "%s%s", prefix, id);
    return n < 0 || n >= CHAN_NAME_MAX ? -1 : n;
}

int chan_conversation(char out[2][CHAN_NAME_MAX], const char *sender, const char *receiver,
                      const char *group, int legacy)
{
    if (group && *group) {
        if (chan_name(out[0], CHAN_GROUP, group) < 0)
            return -1;
        if (!legacy)
            return 1;
        return chan_name(out[1], CHAN_LEGACY, group) < 0 ? -1 : 2;
    }
    if (chan_name(out[0], CHAN_USER, receiver) < 0)
        return -1;
    /* A message to oneself: one publication, not two copies on the same channel. */
    if (!strcmp(receiver, sender))
        return 1;
    return chan_name(out[1], CHAN_USER, sender) < 0 ? -1 : 2;
}
