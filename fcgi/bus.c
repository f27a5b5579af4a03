#include "bus.h"

#include <string.h>

#include "arena.h"
#include "chan.h"
#include "log.h"
#include "rds.h"

static int bus_send(const char *channel, const char *payload)
{
    if (rds_publish(channel, payload, strlen(payload)) >= 0)
        return 0;
    log_warn("bus: publish to %s failed; clients recover with sync", channel);
    return -1;
}

int bus_publish(struct arena *a, const char *kind, const char *id, const char *payload)
{
    const char *channel =
        arena_printf(a, "%s%s", strcmp(kind, "group") ? CHAN_USER : CHAN_GROUP, id);
    return channel ? bus_send(channel, payload) : -1;
}

/* The next space-separated word of *s (NUL-terminated in place), or NULL. */
static char *bus_word(char **s)
{
    char *w = *s + strspn(*s, " ");
    if (!*w)
        return NULL;
    size_t n = strcspn(w, " ");
    *s = w + n + (w[n] != '\0');
    w[n] = '\0';
    return w;
}

int bus_members(struct arena *a, const char *type, const char *group_id, const char *users,
                int to_group)
{
    char *list = users ? arena_strdup(a, users) : NULL;
    int sent = 0;
    for (char *u; list && (u = bus_word(&list));) {
        const char *frame = arena_printf(
            a, "{\"type\":\"%s\",\"group_id\":\"%s\",\"user_id\":\"%s\"}", type, group_id, u);
        if (!frame || bus_publish(a, "user", u, frame) < 0)
            return sent;
        sent++;
        if (to_group && bus_publish(a, "group", group_id, frame) < 0)
            return sent;
        sent += to_group;
    }
    return sent;
}

int bus_fanout(struct arena *a, const char *channels, const char *payload)
{
    char *list = channels ? arena_strdup(a, channels) : NULL;
    int sent = 0;
    for (char *ch; list && (ch = bus_word(&list));) {
        if (bus_send(ch, payload) < 0)
            return sent;
        sent++;
    }
    return sent;
}
