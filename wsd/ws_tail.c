#include "ws_tail.h"

#include "cfg.h"
#include "chan.h"
#include "db.h"
#include "log.h"
#include "ws_bus.h"
#include "ws_db.h"
#include "ws_hub.h"
#include "ws_srv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rows per read; a full batch is followed by the next read at once. */
#define WS_TAIL_BATCH 1000

static const char ws_tail_sql[] =
    "SELECT stable, seq, sender_id, receiver_id, group_id, frame FROM chatd_tail($1, $2)";

/* A caller waiting for T to reach its seq; the list is kept in seq order. */
struct ws_tail_waiter {
    struct ws_tail_waiter *next;
    long long seq;
    ws_tail_wait_fn cb;
    void *arg;
};

struct ws_tail {
    struct ws_srv *srv;
    struct ws_db *db; /* one lane of its own: never queued behind sends */
    uv_timer_t timer;
    long long pos;
    int querying; /* a read is in flight */
    int again;    /* woken while it was: read once more when it returns */
    int stopped;
    struct ws_tail_waiter *waiters; /* ascending seq */
};

long long ws_tail_initial(const char *url)
{
    for (unsigned i = 0;; i++) {
        PGconn *pg = db_connect(url, 0);
        if (!pg)
            return -1;
        PGresult *r =
            PQstatus(pg) == CONNECTION_OK ? PQexec(pg, "SELECT chatd_stable_seq()") : NULL;
        long long s = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                          ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                          : -1;
        if (s < 0 && i % 20 == 0)
            log_warn("tail: cannot read the stable position yet (%s); retrying",
                     r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
        PQclear(r);
        PQfinish(pg);
        if (s >= 0)
            return s;
        usleep(500 * 1000);
    }
}

/* One message row: its frame to the local connections of its conversation. */
static void ws_tail_route(struct ws_tail *t, PGresult *res, int i)
{
    char chans[2][CHAN_NAME_MAX];
    int n = chan_conversation(chans, PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
                              PQgetvalue(res, i, 4), 0);
    for (int k = 0; k < n; k++)
        ws_hub_route_local(t->srv->hub, chans[k], PQgetvalue(res, i, 5),
                           (size_t)PQgetlength(res, i, 5));
}

/*
 * Calls the waiters with seq <= upto (every one on stop), lowest first. The
 * ready ones are unlinked before any callback runs: a callback may add a
 * waiter (the connection's next send) or stop the tail.
 */
static void ws_tail_release(struct ws_tail *t, long long upto, int all)
{
    struct ws_tail_waiter *ready = t->waiters, **end = &t->waiters;
    while (*end && (all || (*end)->seq <= upto))
        end = &(*end)->next;
    t->waiters = *end;
    *end = NULL;
    while (ready) {
        struct ws_tail_waiter *w = ready;
        ready = w->next;
        w->cb(w->arg);
        free(w);
    }
}

static void ws_tail_on_rows(void *arg, PGresult *res)
{
    struct ws_tail *t = arg;
    t->querying = 0;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1 ||
        PQnfields(res) != 6) {
        /* The timer reads again; nothing was routed, so nothing is skipped. */
        if (!t->stopped)
            log_warn("tail: read failed (SQLSTATE %s); retrying on the next tick",
                     res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "none");
        return;
    }
    int rows = PQntuples(res) - 1; /* row 0 carries S alone */
    long long stable = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    for (int i = 1; i <= rows; i++)
        ws_tail_route(t, res, i);
    /* Aborted seqs are gaps that never fill: on to S, unless the batch was cut. */
    long long next = rows < WS_TAIL_BATCH ? stable : strtoll(PQgetvalue(res, rows, 1), NULL, 10);
    if (next > t->pos)
        t->pos = next;
    if (t->waiters && t->waiters->seq <= t->pos)
        ws_tail_release(t, t->pos, 0);
    if (t->again || rows == WS_TAIL_BATCH) {
        t->again = 0;
        ws_tail_kick(t);
    }
}

void ws_tail_kick(struct ws_tail *t)
{
    char after[24], limit[16];
    if (t->stopped)
        return;
    if (t->querying) {
        t->again = 1;
        return;
    }
    snprintf(after, sizeof(after), "%lld", t->pos);
    snprintf(limit, sizeof(limit), "%d", WS_TAIL_BATCH);
    const char *params[] = {after, limit};
    if (ws_db_query(t->db, 0, ws_tail_sql, 2, params, ws_tail_on_rows, t) == 0)
        t->querying = 1;
}

static void ws_tail_on_tick(void *arg, const char *channel, const char *payload, size_t len)
{
    (void)channel;
    struct ws_tail *t = arg;
    /* A seq at or below T is already routed: no read for it. */
    char buf[24];
    if (len && len < sizeof(buf)) {
        memcpy(buf, payload, len);
        buf[len] = '\0';
        if (strtoll(buf, NULL, 10) <= t->pos && !t->querying)
            return;
    }
    ws_tail_kick(t);
}

static void ws_tail_on_timer(uv_timer_t *h)
{
    ws_tail_kick(h->data);
}

struct ws_tail *ws_tail_new(struct ws_srv *srv, const char *url, long long pos)
{
    struct ws_tail *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->srv = srv;
    t->pos = pos;
    if (ws_bus_subscribe(srv->sub, CHAN_TICK, ws_tail_on_tick, t) < 0) {
        free(t);
        return NULL;
    }
    if (!(t->db = ws_db_new(srv->loop, url, 1))) {
        ws_bus_unsubscribe(srv->sub, CHAN_TICK);
        free(t);
        return NULL;
    }
    uv_timer_init(srv->loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, ws_tail_on_timer, (uint64_t)cfg.wsd_tail_poll_ms,
                   (uint64_t)cfg.wsd_tail_poll_ms);
    log_info("tail: starting at seq %lld", pos);
    return t;
}

int ws_tail_wait(struct ws_tail *t, long long seq, ws_tail_wait_fn cb, void *arg)
{
    if (seq <= t->pos || t->stopped) {
        cb(arg);
        return 0;
    }
    struct ws_tail_waiter *w = malloc(sizeof(*w)), **at = &t->waiters;
    if (!w)
        return -1;
    while (*at && (*at)->seq <= seq)
        at = &(*at)->next;
    *w = (struct ws_tail_waiter){.next = *at, .seq = seq, .cb = cb, .arg = arg};
    *at = w;
    ws_tail_kick(t);
    return 0;
}

long long ws_tail_pos(const struct ws_tail *t)
{
    return t->pos;
}

void ws_tail_stop(struct ws_tail *t)
{
    if (!t || t->stopped)
        return;
    t->stopped = 1;
    uv_close((uv_handle_t *)&t->timer, NULL);
    ws_db_stop(t->db);
    /* Their messages are committed; their owners must be let go before the loop ends. */
    ws_tail_release(t, 0, 1);
}

void ws_tail_free(struct ws_tail *t)
{
    if (!t)
        return;
    ws_db_free(t->db);
    free(t);
}
