#include "ws_presence.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "tok.h"
#include "ws_bus.h"
#include "ws_db.h"

#define WS_PRESENCE_BUCKETS 4096

/* Keys: chatd:presence:<uid> hash instance → local connections; chatd:wsd:users:<inst> set of
 * uids; chatd:wsd:instances set; chatd:wsd:alive:<inst> heartbeat with a TTL. */
/*
 * Sets this instance's connection count of each user of ARGV[2] ("uid:n uid:n ...", n = 0
 * withdraws) at once, and returns uid, 1|0 for each user whose first connection anywhere
 * appeared or last one went: one round trip per flush, not one per connect.
 */
static const char ws_presence_batch_lua[] =
    "local out = {} "
    "for uid, n in string.gmatch(ARGV[2], '([^ :]+):(%d+)') do "
    "  local k = 'chatd:presence:' .. uid "
    "  local before = redis.call('HLEN', k) "
    "  if tonumber(n) > 0 then redis.call('HSET', k, ARGV[1], n) redis.call('SADD', KEYS[1], uid) "
    "  else redis.call('HDEL', k, ARGV[1]) redis.call('SREM', KEYS[1], uid) end "
    "  local after = redis.call('HLEN', k) "
    "  if (before == 0) ~= (after == 0) then "
    "    table.insert(out, uid) table.insert(out, after > 0 and 1 or 0) "
    "  end "
    "end "
    "redis.call('SADD', KEYS[2], ARGV[1]) "
    "return out";
/* Forgets every instance whose heartbeat expired; returns the users left with no connection. */
static const char ws_presence_sweep_lua[] =
    "local gone = {} "
    "for _, inst in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  if inst ~= ARGV[1] and redis.call('EXISTS', 'chatd:wsd:alive:' .. inst) == 0 then "
    "    for _, uid in ipairs(redis.call('SMEMBERS', 'chatd:wsd:users:' .. inst)) do "
    "      local k = 'chatd:presence:' .. uid "
    "      redis.call('HDEL', k, inst) "
    "      if redis.call('HLEN', k) == 0 then table.insert(gone, uid) end "
    "    end "
    "    redis.call('DEL', 'chatd:wsd:users:' .. inst) "
    "    redis.call('SREM', KEYS[1], inst) "
    "  end "
    "end "
    "return gone";

static const char ws_presence_store_sql[] =
    "SELECT channel, frame FROM chatd_set_online_batch($1::uuid[], $2::boolean[])";

struct ws_presence_user {
    struct ws_presence_user *next;  /* hash chain */
    struct ws_presence_user *dnext; /* changed since the last flush */
    unsigned count;                 /* open connections here */
    int dirty;
    char id[40];
};

struct ws_presence {
    uv_loop_t *loop;
    struct ws_bus *cmd;
    struct ws_db *db;
    uv_timer_t beat, sweep, tick;
    uint64_t last_flush; /* uv_now() of the last flush */
    unsigned coalesce_ms;
    unsigned ttl_s;
    int stopped;
    char inst[37];
    struct ws_presence_user *dirty;
    struct ws_presence_user *tab[WS_PRESENCE_BUCKETS];
};

static unsigned ws_presence_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct ws_presence_user **ws_presence_slot(struct ws_presence *p, const char *uid)
{
    struct ws_presence_user **u = &p->tab[ws_presence_hash(uid) % WS_PRESENCE_BUCKETS];
    while (*u && strcmp((*u)->id, uid) != 0)
        u = &(*u)->next;
    return u;
}

/* 1 when uid has an open connection on this instance. */
static int ws_presence_is_local(struct ws_presence *p, const char *uid)
{
    struct ws_presence_user *u = *ws_presence_slot(p, uid);
    return u && u->count > 0;
}

/* Publishes each row (channel, frame) the batch statement returned. */
static void ws_presence_on_stored(void *arg, PGresult *res)
{
    struct ws_presence *p = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("presence: cannot store transitions%s", res ? "" : " (database down)");
        return;
    }
    for (int i = 0, n = PQntuples(res); i < n; i++)
        if (ws_bus_publish(p->cmd, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                           (size_t)PQgetlength(res, i, 1), NULL, NULL) < 0) {
            log_warn("presence: cannot publish presence (redis down)");
            return;
        }
}

/*
 * Stores n transitions (uids[i] went online when online[i]) in one statement
 * on one lane: batches then reach Postgres, and their frames Redis, in the
 * order they were made.
 */
static void ws_presence_store(struct ws_presence *p, size_t n, const char *const *uids,
                              const int *online)
{
    if (!n)
        return;
    char *ids = malloc(n * 38 + 3), *states = malloc(n * 2 + 3);
    size_t a = 0, b = 0;
    if (!ids || !states) {
        log_warn("presence: out of memory, %zu transitions not stored", n);
        goto out;
    }
    ids[a++] = states[b++] = '{';
    for (size_t i = 0; i < n; i++) {
        a += (size_t)sprintf(ids + a, "%s%.36s", i ? "," : "", uids[i]);
        b += (size_t)sprintf(states + b, "%s%c", i ? "," : "", online[i] ? 't' : 'f');
    }
    strcpy(ids + a, "}");
    strcpy(states + b, "}");
    log_info("presence: %zu transitions (first: %s is %s)", n, uids[0],
             online[0] ? "online" : "offline");
    const char *params[] = {ids, states};
    if (ws_db_query(p->db, 0, ws_presence_store_sql, 2, params, ws_presence_on_stored, p) < 0)
        log_warn("presence: database queue full, %zu transitions not stored", n);
out:
    free(ids);
    free(states);
}

/* The reply of a batch: uid, 1|0 pairs of the users whose presence changed. */
static void ws_presence_on_flushed(void *arg, const redisReply *r)
{
    struct ws_presence *p = arg;
    size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements / 2 : 0;
    const char **uids = n ? calloc(n, sizeof(*uids)) : NULL;
    int *online = n ? calloc(n, sizeof(*online)) : NULL;
    size_t k = 0;
    for (size_t i = 0; uids && online && i < n; i++) {
        const redisReply *u = r->element[2 * i], *o = r->element[2 * i + 1];
        if (u->type != REDIS_REPLY_STRING || o->type != REDIS_REPLY_INTEGER)
            continue;
        uids[k] = u->str;
        online[k++] = o->integer != 0;
    }
    if (n && (!uids || !online))
        log_warn("presence: out of memory, %zu transitions lost", n);
    ws_presence_store(p, k, uids, online);
    free(uids);
    free(online);
}

/* Takes u off the dirty list's duty; forgets it once it has no connection here. */
static void ws_presence_settle(struct ws_presence *p, struct ws_presence_user *u)
{
    u->dirty = 0;
    if (u->count)
        return;
    struct ws_presence_user **slot = ws_presence_slot(p, u->id);
    *slot = u->next;
    free(u);
}

/*
 * Sends every change since the last flush to Redis in one script; with notify,
 * the transitions it reports are stored and published (without: a re-announce
 * of users who never went away).
 */
static void ws_presence_flush(struct ws_presence *p, int notify)
{
    size_t n = 0, len = 0;
    for (struct ws_presence_user *u = p->dirty; u; u = u->dnext)
        n++;
    if (!n)
        return;
    char *buf = malloc(n * 52 + 1);
    for (struct ws_presence_user *u = p->dirty, *next; u; u = next) {
        next = u->dnext;
        if (buf)
            len += (size_t)sprintf(buf + len, "%s%s:%u", len ? " " : "", u->id, u->count);
        ws_presence_settle(p, u);
    }
    p->dirty = NULL;
    if (!buf || ws_bus_command(p->cmd, notify ? ws_presence_on_flushed : NULL, p,
                               "EVAL %s 2 chatd:wsd:users:%s chatd:wsd:instances %s %b",
                               ws_presence_batch_lua, p->inst, p->inst, buf, len) < 0)
        log_warn("presence: %s, %zu changes not sent", buf ? "redis down" : "out of memory", n);
    free(buf);
}

/* Puts u on the list of the next flush (once). */
static void ws_presence_mark(struct ws_presence *p, struct ws_presence_user *u)
{
    if (u->dirty)
        return;
    u->dirty = 1;
    u->dnext = p->dirty;
    p->dirty = u;
}

static void ws_presence_on_tick(uv_timer_t *t)
{
    struct ws_presence *p = t->data;
    p->last_flush = uv_now(p->loop);
    ws_presence_flush(p, 1);
}

/*
 * Marks u changed. The first change after a quiet interval goes out on the
 * next loop turn; later ones wait for the interval to end, so one instance
 * flushes at most once per WSD_PRESENCE_COALESCE_MS whatever the number of
 * connects (README "Presence").
 */
static void ws_presence_touch(struct ws_presence *p, struct ws_presence_user *u)
{
    ws_presence_mark(p, u);
    if (p->stopped) {
        ws_presence_flush(p, 1);
        return;
    }
    if (uv_is_active((uv_handle_t *)&p->tick))
        return;
    uint64_t now = uv_now(p->loop), due = p->last_flush + p->coalesce_ms;
    uv_timer_start(&p->tick, ws_presence_on_tick, due > now ? due - now : 0, 0);
}

void ws_presence_open(struct ws_presence *p, const char *uid)
{
    struct ws_presence_user **slot = ws_presence_slot(p, uid), *u = *slot;
    if (!u) {
        if (!(u = calloc(1, sizeof(*u))))
            return;
        snprintf(u->id, sizeof(u->id), "%s", uid);
        *slot = u;
    }
    u->count++;
    ws_presence_touch(p, u);
}

void ws_presence_close(struct ws_presence *p, const char *uid)
{
    struct ws_presence_user *u = *ws_presence_slot(p, uid);
    if (!u || !u->count)
        return;
    u->count--;
    ws_presence_touch(p, u);
}

const char *ws_presence_instance(const struct ws_presence *p)
{
    return p->inst;
}

/* The users a sweep or a reset left with no connection anywhere (and none here) go offline. */
static void ws_presence_on_gone(void *arg, const redisReply *r)
{
    struct ws_presence *p = arg;
    size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0, k = 0;
    const char **uids = n ? calloc(n, sizeof(*uids)) : NULL;
    int *online = n ? calloc(n, sizeof(*online)) : NULL;
    for (size_t i = 0; uids && online && i < n; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            !ws_presence_is_local(p, r->element[i]->str))
            uids[k++] = r->element[i]->str;
    ws_presence_store(p, k, uids, online);
    free(uids);
    free(online);
}

static void ws_presence_on_sweep(uv_timer_t *t)
{
    struct ws_presence *p = t->data;
    ws_bus_command(p->cmd, ws_presence_on_gone, p, "EVAL %s 1 chatd:wsd:instances %s",
                   ws_presence_sweep_lua, p->inst);
}

static void ws_presence_on_beat(uv_timer_t *t)
{
    struct ws_presence *p = t->data;
    ws_bus_command(p->cmd, NULL, NULL, "SET chatd:wsd:alive:%s 1 EX %u", p->inst, p->ttl_s);
    ws_bus_command(p->cmd, NULL, NULL, "SADD chatd:wsd:instances %s", p->inst);
}

/* Withdraws everything this instance ever announced; returns (to fn) who is left with nothing. */
static const char ws_presence_reset_lua[] =
    "local gone = {} "
    "for _, uid in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  local k = 'chatd:presence:' .. uid "
    "  redis.call('HDEL', k, ARGV[1]) "
    "  if redis.call('HLEN', k) == 0 then table.insert(gone, uid) end "
    "end "
    "redis.call('DEL', KEYS[1]) "
    "return gone";

/*
 * Redis came back (or was restarted empty, or missed a close while away):
 * withdraw this instance's entries, announce the local users again without
 * publishing (they never went away), and turn offline whoever is left with
 * no connection anywhere.
 */
static void ws_presence_on_cmd_state(void *arg, int up)
{
    struct ws_presence *p = arg;
    if (!up)
        return;
    ws_bus_command(p->cmd, ws_presence_on_gone, p, "EVAL %s 1 chatd:wsd:users:%s %s",
                   ws_presence_reset_lua, p->inst, p->inst);
    for (unsigned i = 0; i < WS_PRESENCE_BUCKETS; i++)
        for (struct ws_presence_user *u = p->tab[i]; u; u = u->next)
            if (u->count)
                ws_presence_mark(p, u);
    ws_presence_flush(p, 0);
    ws_presence_on_beat(&p->beat);
}

struct ws_presence *ws_presence_new(uv_loop_t *loop, struct ws_bus *cmd, struct ws_db *db)
{
    struct ws_presence *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->loop = loop;
    p->cmd = cmd;
    p->db = db;
    p->ttl_s = (unsigned)cfg.wsd_presence_ttl;
    p->coalesce_ms = (unsigned)cfg.wsd_presence_tick_ms;
    tok_uuid(p->inst);
    uv_timer_init(loop, &p->beat);
    uv_timer_init(loop, &p->sweep);
    uv_timer_init(loop, &p->tick);
    p->beat.data = p->sweep.data = p->tick.data = p;
    /* Refresh three times per TTL; sweep twice: a dead instance's users go within 1.5 TTL. */
    uv_timer_start(&p->beat, ws_presence_on_beat, 0, p->ttl_s * 1000 / 3);
    uv_timer_start(&p->sweep, ws_presence_on_sweep, p->ttl_s * 1000 / 2, p->ttl_s * 1000 / 2);
    ws_bus_on_state(cmd, ws_presence_on_cmd_state, p);
    log_info("presence: instance %s, heartbeat ttl %u s, coalescing %u ms", p->inst, p->ttl_s,
             p->coalesce_ms);
    return p;
}

void ws_presence_stop(struct ws_presence *p, int graceful)
{
    /* Changes still waiting for the interval go now; later ones are flushed as they come. */
    p->stopped = 1;
    ws_presence_flush(p, 1);
    uv_timer_stop(&p->beat);
    uv_timer_stop(&p->sweep);
    uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->beat, NULL);
    uv_close((uv_handle_t *)&p->sweep, NULL);
    uv_close((uv_handle_t *)&p->tick, NULL);
    ws_bus_on_state(p->cmd, NULL, NULL);
    if (graceful) {
        /* Connections were closed first (each withdrew itself); now the instance goes. */
        ws_bus_command(p->cmd, NULL, NULL, "DEL chatd:wsd:alive:%s chatd:wsd:users:%s", p->inst,
                       p->inst);
        ws_bus_command(p->cmd, NULL, NULL, "SREM chatd:wsd:instances %s", p->inst);
    }
}

void ws_presence_free(struct ws_presence *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < WS_PRESENCE_BUCKETS; i++)
        for (struct ws_presence_user *u = p->tab[i], *next; u; u = next) {
            next = u->next;
            free(u);
        }
    free(p);
}
