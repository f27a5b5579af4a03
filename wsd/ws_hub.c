#include "ws_hub.h"

#include "chan.h"
#include "log.h"
#include "ws_auth.h"
#include "ws_bus.h"
#include "ws_conn.h"
#include "ws_db.h"
#include "ws_sync.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_HUB_USER CHAN_USER
#define WS_HUB_GROUP CHAN_GROUP
#define WS_HUB_CHAN_MAX CHAN_NAME_MAX

/* One channel some local connection receives. */
struct ws_hub_node {
    struct ws_hub_node *next; /* hash chain */
    struct ws_hub_link *head; /* the connections on it */
    size_t len;
    char chan[WS_HUB_CHAN_MAX];
};

/* A connection on a channel: in the node's list and in the connection's. */
struct ws_hub_link {
    struct ws_hub_link *prev, *next; /* in node */
    struct ws_hub_link *cnext;       /* in the connection's links */
    struct ws_hub_node *node;
    struct ws_conn *c;
    int muted; /* leave_group: this connection skips the channel's events */
};

struct ws_hub {
    struct ws_bus *sub;
    struct ws_db *db; /* for the membership re-check after a Redis outage; NULL: none */
    int was_down;     /* Redis was lost since the last re-check */
    struct ws_hub_node **tab;
    size_t size, count;
};

enum ws_hub_kind { WS_HUB_OTHER, WS_HUB_MESSAGE, WS_HUB_TYPING };

/* What routing needs from a payload; strings point into obj. */
struct ws_hub_ev {
    struct json_object *obj;
    const char *type, *user_id, *group_id;
    enum ws_hub_kind kind;
    uint64_t id_hash; /* of "id", for message events; 0 when absent */
};

static void ws_hub_on_msg(void *arg, const char *channel, const char *payload, size_t len);

static struct ws_hub_node **ws_hub_slot(const struct ws_hub *h, const char *chan, size_t len)
{
    struct ws_hub_node **p = &h->tab[ws_conn_hash(chan, len) & (h->size - 1)];
    while (*p && ((*p)->len != len || memcmp((*p)->chan, chan, len) != 0))
        p = &(*p)->next;
    return p;
}

static int ws_hub_grow(struct ws_hub *h)
{
    size_t size = h->size ? h->size * 2 : 64;
    struct ws_hub_node **tab = calloc(size, sizeof(*tab));
    if (!tab)
        return -1;
    for (size_t i = 0; i < h->size; i++)
        for (struct ws_hub_node *n = h->tab[i], *next; n; n = next) {
            next = n->next;
            size_t k = ws_conn_hash(n->chan, n->len) & (size - 1);
            n->next = tab[k];
            tab[k] = n;
        }
    free(h->tab);
    h->tab = tab;
    h->size = size;
    return 0;
}

static void ws_hub_on_confirm(void *arg, const char *channel);
static void ws_hub_on_state(void *arg, int up);

struct ws_hub *ws_hub_new(struct ws_bus *sub)
{
    struct ws_hub *h = calloc(1, sizeof(*h));
    if (!h || ws_hub_grow(h) < 0) {
        free(h);
        return NULL;
    }
    h->sub = sub;
    ws_bus_on_confirm(sub, ws_hub_on_confirm, h);
    ws_bus_on_state(sub, ws_hub_on_state, h);
    return h;
}

void ws_hub_free(struct ws_hub *h)
{
    if (!h)
        return;
    ws_bus_on_confirm(h->sub, NULL, NULL);
    ws_bus_on_state(h->sub, NULL, NULL);
    if (h->count)
        log_warn("hub: %zu channel(s) still linked at exit", h->count);
    free(h->tab);
    free(h);
}

size_t ws_hub_count(const struct ws_hub *h)
{
    return h->count;
}

/* The node of chan, created and subscribed when absent; NULL when out of memory. */
static struct ws_hub_node *ws_hub_node(struct ws_hub *h, const char *chan, size_t len)
{
    struct ws_hub_node **p = ws_hub_slot(h, chan, len), *n = *p;
    if (n)
        return n;
    if (h->count >= h->size && ws_hub_grow(h) == 0)
        p = ws_hub_slot(h, chan, len);
    if (!(n = calloc(1, sizeof(*n))))
        return NULL;
    memcpy(n->chan, chan, len);
    n->len = len;
    if (ws_bus_subscribe(h->sub, n->chan, ws_hub_on_msg, h) < 0) {
        free(n);
        return NULL;
    }
    *p = n;
    h->count++;
    return n;
}

static void ws_hub_node_drop(struct ws_hub *h, struct ws_hub_node *n)
{
    struct ws_hub_node **p = ws_hub_slot(h, n->chan, n->len);
    *p = n->next;
    h->count--;
    ws_bus_unsubscribe(h->sub, n->chan);
    free(n);
}

static struct ws_hub_link *ws_hub_find(const struct ws_conn *c, const char *chan, size_t len)
{
    for (struct ws_hub_link *l = c->links; l; l = l->cnext)
        if (l->node->len == len && !memcmp(l->node->chan, chan, len))
            return l;
    return NULL;
}

/* Puts c on channel prefix+id (once). Returns the link, or NULL when out of memory. */
static struct ws_hub_link *ws_hub_link(struct ws_hub *h, struct ws_conn *c, const char *prefix,
                                       const char *id, size_t id_len)
{
    char chan[WS_HUB_CHAN_MAX];
    int len = snprintf(chan, sizeof(chan), "%s%.*s", prefix, (int)id_len, id);
    if (len < 0 || (size_t)len >= sizeof(chan))
        return NULL;
    struct ws_hub_link *l = ws_hub_find(c, chan, (size_t)len);
    if (l)
        return l;
    struct ws_hub_node *n = ws_hub_node(h, chan, (size_t)len);
    if (!n || !(l = calloc(1, sizeof(*l)))) {
        if (n && !n->head)
            ws_hub_node_drop(h, n);
        return NULL;
    }
    l->node = n;
    l->c = c;
    l->next = n->head;
    if (n->head)
        n->head->prev = l;
    n->head = l;
    l->cnext = c->links;
    c->links = l;
    return l;
}

static void ws_hub_unlink(struct ws_hub *h, struct ws_hub_link *l)
{
    struct ws_hub_node *n = l->node;
    struct ws_hub_link **p = &l->c->links;
    while (*p != l)
        p = &(*p)->cnext;
    *p = l->cnext;
    if (l->prev)
        l->prev->next = l->next;
    else
        n->head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    free(l);
    if (!n->head)
        ws_hub_node_drop(h, n);
}

int ws_hub_confirmed(const struct ws_hub *h, const struct ws_conn *c)
{
    if (!ws_bus_is_up(h->sub))
        return 1; /* nothing to wait for: sync recovers what an outage loses */
    for (const struct ws_hub_link *l = c->links; l; l = l->cnext)
        if (!ws_bus_confirmed(h->sub, l->node->chan))
            return 0;
    return 1;
}

/* Each connection on the channel that waits for its subscriptions may go on. */
static void ws_hub_on_confirm(void *arg, const char *channel)
{
    struct ws_hub *h = arg;
    struct ws_hub_node *n = *ws_hub_slot(h, channel, strlen(channel));
    for (struct ws_hub_link *l = n ? n->head : NULL, *next; l; l = next) {
        next = l->next;
        if (l->c->sync)
            ws_sync_confirmed(l->c);
    }
}

/* Every connection that has a replay running (for the redis-down release). */
static void ws_hub_each_sync(struct ws_hub *h, void (*fn)(struct ws_conn *))
{
    for (size_t i = 0; i < h->size; i++)
        for (struct ws_hub_node *n = h->tab[i]; n; n = n->next)
            for (struct ws_hub_link *l = n->head, *next; l; l = next) {
                next = l->next;
                if (l->c->sync)
                    fn(l->c);
            }
}

int ws_hub_add(struct ws_hub *h, struct ws_conn *c, const char *groups)
{
    if (!ws_hub_link(h, c, WS_HUB_USER, c->user_id, strlen(c->user_id)))
        return -1;
    for (const char *g = groups; g && *g;) {
        size_t n = strcspn(g, " ");
        if (n && !ws_hub_link(h, c, WS_HUB_GROUP, g, n))
            return -1;
        g += n + strspn(g + n, " ");
    }
    return 0;
}

void ws_hub_remove(struct ws_hub *h, struct ws_conn *c)
{
    while (c->links)
        ws_hub_unlink(h, c->links);
}

static struct ws_hub_link *ws_hub_group_link(const struct ws_conn *c, const char *gid)
{
    char chan[WS_HUB_CHAN_MAX];
    int len = snprintf(chan, sizeof(chan), WS_HUB_GROUP "%s", gid);
    if (len < 0 || (size_t)len >= sizeof(chan))
        return NULL;
    return ws_hub_find(c, chan, (size_t)len);
}

unsigned ws_hub_user_conns(const struct ws_hub *h, const char *uid)
{
    char chan[WS_HUB_CHAN_MAX];
    int len = snprintf(chan, sizeof(chan), WS_HUB_USER "%s", uid);
    if (len < 0 || (size_t)len >= sizeof(chan))
        return 0;
    const struct ws_hub_node *n = *ws_hub_slot(h, chan, (size_t)len);
    unsigned count = 0;
    for (const struct ws_hub_link *l = n ? n->head : NULL; l; l = l->next)
        count += !l->c->close_code;
    return count;
}

int ws_hub_in_group(const struct ws_conn *c, const char *gid)
{
    return ws_hub_group_link(c, gid) != NULL;
}

int ws_hub_join(struct ws_hub *h, struct ws_conn *c, const char *gid)
{
    struct ws_hub_link *l = ws_hub_link(h, c, WS_HUB_GROUP, gid, strlen(gid));
    if (!l)
        return -1;
    l->muted = 0;
    return 0;
}

void ws_hub_leave(struct ws_conn *c, const char *gid)
{
    struct ws_hub_link *l = ws_hub_group_link(c, gid);
    if (l)
        l->muted = 1;
}

/* The string member key of o, or NULL. */
static const char *ws_hub_str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int ws_hub_parse(const char *payload, size_t len, struct ws_hub_ev *ev)
{
    struct json_tokener *tok = json_tokener_new();
    memset(ev, 0, sizeof(*ev));
    if (!tok)
        return -1;
    ev->obj = json_tokener_parse_ex(tok, payload, (int)len);
    json_tokener_free(tok);
    if (!ev->obj || !json_object_is_type(ev->obj, json_type_object) ||
        !(ev->type = ws_hub_str(ev->obj, "type"))) {
        json_object_put(ev->obj);
        ev->obj = NULL;
        return -1;
    }
    ev->user_id = ws_hub_str(ev->obj, "user_id");
    ev->group_id = ws_hub_str(ev->obj, "group_id");
    if (!strcmp(ev->type, "typing"))
        ev->kind = WS_HUB_TYPING;
    const char *id = ws_hub_str(ev->obj, "id");
    if (!strcmp(ev->type, "message") && id) {
        ev->kind = WS_HUB_MESSAGE;
        ev->id_hash = ws_conn_hash(id, strlen(id));
    }
    return 0;
}

static void ws_hub_deliver(struct ws_hub_link *l, struct ws_conn_frame *f,
                           const struct ws_hub_ev *ev)
{
    struct ws_conn *c = l->c;
    if (l->muted || c->close_code)
        return;
    /* WS.md: typing is not echoed to the typing user's own connections. */
    if (ev->kind == WS_HUB_TYPING && ev->user_id && !strcmp(ev->user_id, c->user_id))
        return;
    /* Sent by this very connection (it had its ack), replayed, or published twice. */
    if (ev->kind == WS_HUB_MESSAGE && ws_conn_seen(c, ev->id_hash))
        return;
    /* A replay runs (messages wait for it), or the connection is starting (everything waits). */
    if (c->sync && (ev->kind == WS_HUB_MESSAGE || ws_sync_holds_all(c))) {
        ws_sync_hold(c, f, ev->id_hash);
        return;
    }
    ws_conn_push(c, f);
}

/* member_added on a user's channel: each of their connections here now receives the group. */
static void ws_hub_add_group(struct ws_hub *h, struct ws_hub_node *n, const char *gid)
{
    for (struct ws_hub_link *l = n->head, *next; l; l = next) {
        next = l->next;
        if (!ws_hub_link(h, l->c, WS_HUB_GROUP, gid, strlen(gid)))
            log_warn("hub: out of memory adding a group");
    }
}

/* member_removed on a user's channel: none of their connections here receives the group now. */
static void ws_hub_drop_user_group(struct ws_hub *h, struct ws_hub_node *n, const char *gid)
{
    for (struct ws_hub_link *l = n->head; l; l = l->next) {
        struct ws_hub_link *g = ws_hub_group_link(l->c, gid);
        if (g)
            ws_hub_unlink(h, g);
    }
}

/*
 * On group node n: unlinks the connections of user uid (member_removed), or
 * all (group_deleted, uid NULL). The last unlink frees n.
 */
static void ws_hub_drop_members(struct ws_hub *h, struct ws_hub_node *n, const char *uid)
{
    for (struct ws_hub_link *l = n->head, *next; l; l = next) {
        next = l->next;
        if (uid && strcmp(l->c->user_id, uid) != 0)
            continue;
        int last = n->head == l && !l->next;
        ws_hub_unlink(h, l);
        if (last)
            return;
    }
}

static void ws_hub_route(struct ws_hub *h, struct ws_hub_node *n, const char *payload, size_t len,
                         const struct ws_hub_ev *ev)
{
    int on_user = !strncmp(n->chan, WS_HUB_USER, sizeof(WS_HUB_USER) - 1);
    const char *gid = ev->group_id;
    /* Session events are for wsd itself (ws_auth.c), never for clients. */
    if (on_user && ws_auth_is_event(ev->type)) {
        for (struct ws_hub_link *l = n->head; l; l = l->next)
            ws_auth_on_event(l->c, ev->type, ev->obj);
        return;
    }
    if (on_user && gid && !strcmp(ev->type, "member_added"))
        ws_hub_add_group(h, n, gid);
    struct ws_conn_frame *f = ws_conn_frame_new(payload, len);
    if (!f) {
        log_warn("hub: out of memory, an event on %s is lost", n->chan);
        return;
    }
    for (struct ws_hub_link *l = n->head; l; l = l->next)
        ws_hub_deliver(l, f, ev);
    ws_conn_frame_unref(f);
    /* After forwarding, so the affected connections still get the event itself. */
    if (on_user && gid && !strcmp(ev->type, "member_removed"))
        ws_hub_drop_user_group(h, n, gid);
    else if (!on_user && ev->user_id && !strcmp(ev->type, "member_removed"))
        ws_hub_drop_members(h, n, ev->user_id);
    else if (!on_user && !strcmp(ev->type, "group_deleted"))
        ws_hub_drop_members(h, n, NULL);
}

static void ws_hub_on_msg(void *arg, const char *channel, const char *payload, size_t len)
{
    struct ws_hub *h = arg;
    struct ws_hub_node *n = *ws_hub_slot(h, channel, strlen(channel));
    struct ws_hub_ev ev;
    if (!n)
        return;
    if (ws_hub_parse(payload, len, &ev) < 0) {
        log_warn("hub: a payload on %s is not a JSON object with a type; dropped", channel);
        return;
    }
    ws_hub_route(h, n, payload, len, &ev);
    json_object_put(ev.obj);
}

void ws_hub_route_local(struct ws_hub *h, const char *channel, const char *frame, size_t len)
{
    ws_hub_on_msg(h, channel, frame, len);
}

void ws_hub_use_db(struct ws_hub *h, struct ws_db *db)
{
    h->db = db;
}

/* 1 when gid (gid_len bytes) is a word of the space-separated list groups. */
static int ws_hub_listed(const char *groups, const char *gid, size_t gid_len)
{
    for (const char *g = groups; *g;) {
        size_t n = strcspn(g, " ");
        if (n == gid_len && !memcmp(g, gid, n))
            return 1;
        g += n + strspn(g + n, " ");
    }
    return 0;
}

/* c's groups are now exactly those of the list: unlinks the others, links the new ones. */
static void ws_hub_resync_conn(struct ws_hub *h, struct ws_conn *c, const char *groups)
{
    static const size_t plen = sizeof(WS_HUB_GROUP) - 1;
    for (struct ws_hub_link *l = c->links, *next; l; l = next) {
        next = l->cnext;
        const struct ws_hub_node *n = l->node;
        if (!strncmp(n->chan, WS_HUB_GROUP, plen) &&
            !ws_hub_listed(groups, n->chan + plen, n->len - plen)) {
            log_info("hub: no longer a member of %s (changed while Redis was away)",
                     n->chan + plen);
            ws_hub_unlink(h, l);
        }
    }
    if (ws_hub_add(h, c, groups) < 0)
        log_warn("hub: out of memory re-linking groups");
}

/* One row per connected user: user_id, the space-separated ids of their groups. */
static void ws_hub_on_members(void *arg, PGresult *res)
{
    struct ws_hub *h = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("hub: membership re-check failed; connections keep their groups");
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        char chan[WS_HUB_CHAN_MAX];
        if (chan_name(chan, WS_HUB_USER, PQgetvalue(res, i, 0)) < 0)
            continue;
        struct ws_hub_node *n = *ws_hub_slot(h, chan, strlen(chan));
        for (struct ws_hub_link *l = n ? n->head : NULL, *next; l; l = next) {
            next = l->next;
            ws_hub_resync_conn(h, l->c, PQgetvalue(res, i, 1));
        }
    }
    log_info("hub: memberships re-checked for %d user(s)", PQntuples(res));
}

static const char ws_hub_members_sql[] =
    "SELECT u::text, coalesce(string_agg(gm.group_id::text, ' '), '')"
    " FROM unnest($1::uuid[]) u LEFT JOIN group_members gm ON gm.user_id = u GROUP BY u";

/*
 * Redis is back: memberships may have changed while their events were lost
 * (a member removed then must stop receiving the group). Reads the groups of
 * every connected user from Postgres, as a '{id,id}' array parameter.
 */
static void ws_hub_recheck(struct ws_hub *h)
{
    static const size_t plen = sizeof(WS_HUB_USER) - 1;
    size_t cap = 3 + h->count * 38, len = 0;
    char *ids = h->db ? malloc(cap) : NULL;
    if (!ids)
        return;
    ids[len++] = '{';
    for (size_t i = 0; i < h->size; i++)
        for (struct ws_hub_node *n = h->tab[i]; n; n = n->next)
            if (!strncmp(n->chan, WS_HUB_USER, plen) && n->len - plen < 37) {
                len += (size_t)sprintf(ids + len, "%s%.*s", len > 1 ? "," : "",
                                       (int)(n->len - plen), n->chan + plen);
            }
    ids[len++] = '}';
    ids[len] = '\0';
    const char *params[] = {ids};
    if (len > 2 && ws_db_query(h->db, 0, ws_hub_members_sql, 1, params, ws_hub_on_members, h) < 0)
        log_warn("hub: membership re-check not queued (database busy)");
    free(ids);
}

static void ws_hub_on_state(void *arg, int up)
{
    struct ws_hub *h = arg;
    if (!up) { /* no confirmation is coming: connections waiting for one go on */
        h->was_down = 1;
        ws_hub_each_sync(h, ws_sync_confirmed);
    } else if (h->was_down) {
        h->was_down = 0;
        ws_hub_recheck(h);
    }
}
