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

#define WS_PRESENCE_BUCKETS 1024

/* Keys: chatd:presence:<uid> hash instance → local connections; chatd:wsd:users:<inst> set of
 * uids; chatd:wsd:instances set; chatd:wsd:alive:<inst> heartbeat with a TTL. */
static const char ws_presence_open_lua[] = "local before = redis.call('HLEN', KEYS[1]) "
                                           "redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[3]) "
                                           "redis.call('SADD', KEYS[2], ARGV[2]) "
                                           "redis.call('SADD', KEYS[3], ARGV[1]) "
                                           "return before";
static const char ws_presence_close_lua[] =
    "local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1) "
    "if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) redis.call('SREM', KEYS[2], ARGV[2]) end "
    "return redis.call('HLEN', KEYS[1])";
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

static const char ws_presence_set_sql[] = "SELECT frame, channels FROM chatd_set_online($1, $2)";

struct ws_presence_user {
    struct ws_presence_user *next;
    unsigned count;
    char id[40];
};

struct ws_presence {
    struct ws_bus *cmd;
    struct ws_db *db;
    uv_timer_t beat, sweep;
    char inst[37];
    unsigned ttl_s;
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

/* Publishes the online_status frame the database built on each of its channels. */
static void ws_presence_on_set(void *arg, PGresult *res)
{
    struct ws_presence *p = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        log_warn("presence: cannot store a transition%s", res ? "" : " (database down)");
        return;
    }
    const char *frame = PQgetvalue(res, 0, 0);
    char *chans = strdup(PQgetvalue(res, 0, 1)), *save = NULL;
    for (char *c = chans ? strtok_r(chans, " ", &save) : NULL; c; c = strtok_r(NULL, " ", &save))
        if (ws_bus_publish(p->cmd, c, frame, strlen(frame), NULL, NULL) < 0)
            log_warn("presence: cannot publish online_status (redis down)");
    free(chans);
}

static void ws_presence_transition(struct ws_presence *p, const char *uid, int online)
{
    const char *params[] = {uid, online ? "t" : "f"};
    log_info("presence: %s is %s", uid, online ? "online" : "offline");
    if (ws_db_query(p->db, ws_presence_hash(uid), ws_presence_set_sql, 2, params,
                    ws_presence_on_set, p) < 0)
        log_warn("presence: database queue full, %s not stored", uid);
}

struct ws_presence_op {
    struct ws_presence *p;
    int online; /* the transition this op may cause */
    char uid[40];
};

static void ws_presence_on_count(void *arg, const redisReply *r)
{
    struct ws_presence_op *op = arg;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        ws_presence_transition(op->p, op->uid, op->online);
    free(op);
}

/* Runs the open (n > 0: add n connections) or close script for uid. */
static void ws_presence_eval(struct ws_presence *p, const char *uid, int open, unsigned n,
                             int notify)
{
    struct ws_presence_op *op = calloc(1, sizeof(*op));
    if (!op)
        return;
    op->p = p;
    op->online = open;
    snprintf(op->uid, sizeof(op->uid), "%s", uid);
    int rc = open ? ws_bus_command(p->cmd, notify ? ws_presence_on_count : NULL, op,
                                   "EVAL %s 3 chatd:presence:%s chatd:wsd:users:%s "
                                   "chatd:wsd:instances %s %s %u",
                                   ws_presence_open_lua, uid, p->inst, p->inst, uid, n)
                  : ws_bus_command(p->cmd, ws_presence_on_count, op,
                                   "EVAL %s 2 chatd:presence:%s chatd:wsd:users:%s %s %s",
                                   ws_presence_close_lua, uid, p->inst, p->inst, uid);
    if (rc < 0 || !notify)
        free(op);
    if (rc < 0 && notify)
        log_warn("presence: redis down, %s not %s", uid, open ? "announced" : "withdrawn");
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
    ws_presence_eval(p, uid, 1, 1, 1);
}

void ws_presence_close(struct ws_presence *p, const char *uid)
{
    struct ws_presence_user **slot = ws_presence_slot(p, uid), *u = *slot;
    if (!u)
        return;
    if (--u->count == 0) {
        *slot = u->next;
        free(u);
    }
    ws_presence_eval(p, uid, 0, 0, 1);
}

const char *ws_presence_instance(const struct ws_presence *p)
{
    return p->inst;
}

static void ws_presence_on_gone(void *arg, const redisReply *r)
{
    struct ws_presence *p = arg;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING && !*ws_presence_slot(p, r->element[i]->str))
            ws_presence_transition(p, r->element[i]->str, 0);
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
            ws_presence_eval(p, u->id, 1, u->count, 0);
    ws_presence_on_beat(&p->beat);
}

struct ws_presence *ws_presence_new(uv_loop_t *loop, struct ws_bus *cmd, struct ws_db *db)
{
    struct ws_presence *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->cmd = cmd;
    p->db = db;
    p->ttl_s = (unsigned)cfg.wsd_presence_ttl;
    tok_uuid(p->inst);
    uv_timer_init(loop, &p->beat);
    uv_timer_init(loop, &p->sweep);
    p->beat.data = p->sweep.data = p;
    /* Refresh three times per TTL; sweep twice: a dead instance's users go within 1.5 TTL. */
    uv_timer_start(&p->beat, ws_presence_on_beat, 0, p->ttl_s * 1000 / 3);
    uv_timer_start(&p->sweep, ws_presence_on_sweep, p->ttl_s * 1000 / 2, p->ttl_s * 1000 / 2);
    ws_bus_on_state(cmd, ws_presence_on_cmd_state, p);
    log_info("presence: instance %s, heartbeat ttl %u s", p->inst, p->ttl_s);
    return p;
}

void ws_presence_stop(struct ws_presence *p, int graceful)
{
    uv_timer_stop(&p->beat);
    uv_timer_stop(&p->sweep);
    uv_close((uv_handle_t *)&p->beat, NULL);
    uv_close((uv_handle_t *)&p->sweep, NULL);
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
