#include "ws_sync.h"

#include "cfg.h"
#include "chan.h"
#include "log.h"
#include "ws_conn.h"
#include "ws_hub.h"
#include "ws_proto.h"
#include "ws_srv.h"
#include "ws_tail.h"

#include <json-c/json.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows per query. */
#define WS_SYNC_BATCH 500
/* The replay goes into the out-queue only while it is below these, so it never fills it. */
#define WS_SYNC_QUEUE_FRAMES 256
#define WS_SYNC_QUEUE_BYTES (1024 * 1024)
/*
 * Live message events held during one replay; more closes the connection.
 * With the replay's share of the queue they stay under the least
 * WSD_OUT_QUEUE_MAX_BYTES (4 MiB), so releasing them never overflows it.
 */
#define WS_SYNC_MAX_LIVE 512
#define WS_SYNC_MAX_LIVE_BYTES (2 * 1024 * 1024)
/*
 * How long a startup replay waits for Redis to confirm the subscriptions. A
 * Redis that hangs without closing the connection never answers: past this
 * the connection goes on, as when Redis is down (sync recovers).
 */
#define WS_SYNC_SUB_WAIT_MS 3000

/*
 * One batch: at most WS_SYNC_BATCH rows and about cfg.wsd_sync_batch_bytes of
 * them (at least one row); `more` tells that the batch was cut. Bounded by
 * $5, the instance's tail position: every seq up to it is final, and every
 * message above it reaches c live (held while the replay runs), so replay
 * and live traffic are one stream in seq order, with no overlap for the
 * seen-ids ring to catch (schema/0015_seq_gate.sql, chatd_sync_upto).
 */
static const char ws_sync_sql[] =
    "SELECT seq, id, msg, more FROM chatd_sync_upto($1, $2, $5, $3, $4)";
/*
 * The same empty answer when the range (since, upto] is empty, as for most
 * startup replays (nothing arrived between the handshake and the replay):
 * still a job on the user's lane, so the order of its callbacks is kept, but
 * without planning chatd_sync_upto(): that was most of Postgres's work while
 * 10,000 clients connected.
 */
static const char ws_sync_empty_sql[] =
    "SELECT NULL::bigint, NULL::uuid, NULL::json, NULL::boolean WHERE false";

struct ws_sync_live {
    struct ws_conn_frame *f; /* NULL once the replay sent the same message */
    uint64_t h;
};

struct ws_sync {
    long long last;     /* highest seq replayed so far (since, before any) */
    int querying;       /* a batch is on its way */
    int db_done;        /* the last batch was the end: nothing more to read */
    int startup;        /* opened at the handshake: holds everything, ends with ws_proto_done() */
    int started;        /* the first batch was asked for */
    int quiet;          /* no `synced` at the end (the client did not ask for a replay) */
    int wait_sub;       /* read to the end; waiting for Redis to confirm c's channels */
    int confirmed_read; /* the last batch was read after c's channels were confirmed */
    int gave_up;        /* WS_SYNC_SUB_WAIT_MS passed without the confirmation */
    struct ws_sync_timer *timer; /* bounds wait_sub */
    PGresult *res;               /* the batch being fed to the out-queue, one frame at a time */
    int row, rows;
    struct ws_sync_live *live;
    unsigned live_n, live_cap;
    size_t live_bytes;
    unsigned replayed, dropped; /* for the log */
};

static void ws_sync_query(struct ws_conn *c);

/* A timer of its own, closed apart from the replay (the ticket finds the connection). */
struct ws_sync_timer {
    uv_timer_t t;
    struct ws_conn_ticket *ticket;
};

static void ws_sync_timer_free(uv_handle_t *h)
{
    free(h->data);
}

static void ws_sync_timer_cancel(struct ws_sync *s)
{
    struct ws_sync_timer *w = s->timer;
    if (!w)
        return;
    s->timer = NULL;
    ws_conn_ticket_take(w->ticket);
    uv_close((uv_handle_t *)&w->t, ws_sync_timer_free);
}

static void ws_sync_drop_batch(struct ws_sync *s)
{
    PQclear(s->res);
    s->res = NULL;
    s->row = s->rows = 0;
}

void ws_sync_free(struct ws_conn *c)
{
    struct ws_sync *s = c->sync;
    if (!s)
        return;
    c->sync = NULL;
    ws_sync_timer_cancel(s);
    ws_sync_drop_batch(s);
    for (unsigned i = 0; i < s->live_n; i++)
        ws_conn_frame_unref(s->live[i].f);
    free(s->live);
    free(s);
}

/*
 * The replay is over: releases the held live events, in order, then synced.
 * A failed replay closes the connection instead: releasing newer events after
 * a partial replay would move the client's watermark over the hole, so it
 * reconnects with ?since= from the watermark it has.
 */
static void ws_sync_end(struct ws_conn *c, int ok)
{
    struct ws_sync *s = c->sync;
    int startup = s->startup;
    log_debug("ws: sync %s: %u replayed, %u live held, %u of them replayed", ok ? "done" : "failed",
              s->replayed, s->live_n, s->dropped);
    if (!ok) {
        ws_sync_free(c);
        ws_conn_close_later(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "Sync failed");
        return;
    }
    for (unsigned i = 0; i < s->live_n; i++)
        if (s->live[i].f)
            ws_conn_push(c, s->live[i].f);
    if (!s->quiet) {
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "{\"type\":\"synced\",\"last_seq\":%lld}", s->last);
        ws_conn_send(c, buf, (size_t)n);
    }
    ws_sync_free(c);
    if (startup)
        ws_proto_done(c); /* the client's first messages waited for this */
}

void ws_sync_open(struct ws_conn *c)
{
    if (!c->sync && !(c->sync = calloc(1, sizeof(*c->sync)))) {
        ws_conn_close_later(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "Out of memory");
        return;
    }
    c->sync->startup = 1;
}

int ws_sync_holds_all(const struct ws_conn *c)
{
    return c->sync && c->sync->startup && !c->sync->started;
}

/*
 * Authenticated: the events other than messages held so far go out now (only
 * messages wait for the replay, whose frames they might repeat).
 */
static void ws_sync_release_others(struct ws_conn *c)
{
    struct ws_sync *s = c->sync;
    for (unsigned i = 0; i < s->live_n; i++)
        if (s->live[i].f && !s->live[i].h) {
            ws_conn_push(c, s->live[i].f);
            s->live_bytes -= s->live[i].f->len;
            ws_conn_frame_unref(s->live[i].f);
            s->live[i].f = NULL;
        }
}

void ws_sync_begin(struct ws_conn *c, long long since, int quiet)
{
    struct ws_sync *s = c->sync;
    if (!s || s->started)
        return;
    s->last = since;
    s->quiet = quiet;
    s->started = 1;
    ws_sync_release_others(c);
    log_debug("ws: startup replay above %lld", since);
    ws_sync_query(c);
}

void ws_sync_start(struct ws_conn *c, long long since)
{
    if (c->sync) {
        ws_conn_error(c, "A sync is already running", NULL);
        return;
    }
    if (!(c->sync = calloc(1, sizeof(*c->sync)))) {
        ws_conn_close_later(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "Sync failed");
        return;
    }
    c->sync->last = since;
    c->sync->started = 1;
    log_debug("ws: sync since %lld", since);
    ws_sync_query(c);
}

int ws_sync_cmd(struct ws_conn *c, struct json_object *msg)
{
    struct json_object *v;
    if (!json_object_object_get_ex(msg, "since", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) < 0) {
        ws_conn_error(c, "since must be a non-negative integer", NULL);
        return 0;
    }
    ws_sync_start(c, (long long)json_object_get_int64(v));
    return 0;
}

void ws_sync_hold(struct ws_conn *c, struct ws_conn_frame *f, uint64_t h)
{
    struct ws_sync *s = c->sync;
    if (s->live_n == s->live_cap) {
        unsigned cap = s->live_cap ? s->live_cap * 2 : 16;
        struct ws_sync_live *live =
            cap > WS_SYNC_MAX_LIVE ? NULL : realloc(s->live, cap * sizeof(*live));
        if (!live) {
            ws_conn_close_later(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Too slow");
            return;
        }
        s->live = live;
        s->live_cap = cap;
    }
    if (s->live_bytes + f->len > WS_SYNC_MAX_LIVE_BYTES) {
        ws_conn_close_later(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Too slow");
        return;
    }
    s->live_bytes += f->len;
    f->refs++;
    s->live[s->live_n].f = f;
    s->live[s->live_n++].h = h;
}

/* The replay sent message h: a held live copy of it must not go out too. */
static void ws_sync_forget_live(struct ws_sync *s, uint64_t h)
{
    for (unsigned i = 0; i < s->live_n; i++)
        if (s->live[i].f && s->live[i].h == h) {
            ws_conn_frame_unref(s->live[i].f);
            s->live[i].f = NULL;
            s->dropped++;
        }
}

/* Row i of the batch as a frame: {"type":"message", and the MessageRead object's members. */
static struct ws_conn_frame *ws_sync_frame(struct ws_conn *c, int i)
{
    static const char head[] = CHAN_FRAME_MESSAGE;
    struct ws_sync *s = c->sync;
    const char *json = PQgetvalue(s->res, i, 2);
    size_t len = (size_t)PQgetlength(s->res, i, 2);
    if (len < 2 || json[0] != '{')
        return NULL;
    uint64_t h = ws_conn_hash(PQgetvalue(s->res, i, 1), (size_t)PQgetlength(s->res, i, 1));
    ws_sync_forget_live(s, h);
    ws_conn_seen_add(c, h); /* a late live copy after the replay is skipped too */
    s->replayed++;
    s->last = strtoll(PQgetvalue(s->res, i, 0), NULL, 10);
    return ws_conn_frame_cat(head, sizeof(head) - 1, json + 1, len - 1);
}

static void ws_sync_on_batch(struct ws_conn *c, PGresult *res)
{
    struct ws_sync *s = c->sync;
    if (!s)
        return;
    s->querying = 0;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 4) {
        if (res)
            log_warn("ws: sync failed (SQLSTATE %s)", PQresultErrorField(res, PG_DIAG_SQLSTATE));
        else
            log_warn("ws: sync failed: database unavailable");
        ws_sync_end(c, 0);
        return;
    }
    s->rows = PQntuples(res);
    s->row = 0;
    s->db_done = !s->rows || strcmp(PQgetvalue(res, s->rows - 1, 3), "t") != 0;
    /* The lane clears res when this returns; frames are made from the copy as the queue drains. */
    if (s->rows && !(s->res = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES))) {
        ws_sync_end(c, 0);
        return;
    }
    ws_sync_pump(c);
}

static void ws_sync_query(struct ws_conn *c)
{
    char since[32], limit[16], bytes[16], upto[32];
    struct ws_sync *s = c->sync;
    snprintf(since, sizeof(since), "%lld", s->last);
    snprintf(limit, sizeof(limit), "%d", WS_SYNC_BATCH);
    snprintf(bytes, sizeof(bytes), "%d", cfg.wsd_sync_batch_bytes);
    long long pos = ws_tail_pos(c->srv->tail);
    snprintf(upto, sizeof(upto), "%lld", pos);
    const char *params[] = {c->user_id, since, limit, bytes, upto};
    int empty = pos <= s->last;
    /* After the confirmation, whatever this batch misses comes live: nothing falls between. */
    s->confirmed_read = !s->startup || s->gave_up || ws_hub_confirmed(c->srv->hub, c);
    s->querying = 1;
    if (ws_conn_query(c, empty ? ws_sync_empty_sql : ws_sync_sql, empty ? 0 : 5,
                      empty ? NULL : params, ws_sync_on_batch) < 0) {
        s->querying = 0;
        ws_sync_end(c, 0);
    }
}

static void ws_sync_on_wait_timeout(uv_timer_t *t)
{
    struct ws_sync_timer *w = t->data;
    struct ws_conn *c = ws_conn_ticket_take(w->ticket);
    uv_close((uv_handle_t *)t, ws_sync_timer_free);
    if (!c || !c->sync)
        return;
    c->sync->timer = NULL;
    if (!c->sync->wait_sub)
        return;
    log_warn("ws: Redis did not confirm the subscriptions in %d ms; going on", WS_SYNC_SUB_WAIT_MS);
    c->sync->gave_up = 1;
    c->sync->wait_sub = 0;
    ws_sync_query(c);
}

/* Starts the bound on the wait; without memory for it, the wait is not bounded. */
static void ws_sync_wait_bounded(struct ws_conn *c)
{
    struct ws_sync_timer *w = c->sync->timer ? NULL : malloc(sizeof(*w));
    if (!w || !(w->ticket = ws_conn_ticket(c))) {
        free(w);
        return;
    }
    uv_timer_init(c->srv->loop, &w->t);
    w->t.data = w;
    uv_timer_start(&w->t, ws_sync_on_wait_timeout, WS_SYNC_SUB_WAIT_MS, 0);
    c->sync->timer = w;
}

/*
 * Read to the end. A startup replay also needs a read made after Redis
 * confirmed c's channels: until then an event can be neither live nor read.
 */
static void ws_sync_finish(struct ws_conn *c)
{
    struct ws_sync *s = c->sync;
    if (s->confirmed_read) {
        ws_sync_end(c, 1);
    } else if (ws_hub_confirmed(c->srv->hub, c)) {
        ws_sync_query(c);
    } else {
        s->wait_sub = 1;
        ws_sync_wait_bounded(c);
    }
}

void ws_sync_confirmed(struct ws_conn *c)
{
    struct ws_sync *s = c->sync;
    if (!s || !s->wait_sub || c->close_code || !ws_hub_confirmed(c->srv->hub, c))
        return;
    s->wait_sub = 0;
    ws_sync_timer_cancel(s);
    ws_sync_query(c);
}

void ws_sync_pump(struct ws_conn *c)
{
    struct ws_sync *s = c->sync;
    if (!s || c->close_code || !s->started || s->wait_sub)
        return;
    while (s->row < s->rows && !c->close_code && c->q_count < WS_SYNC_QUEUE_FRAMES &&
           c->q_bytes < WS_SYNC_QUEUE_BYTES) {
        struct ws_conn_frame *f = ws_sync_frame(c, s->row++);
        if (!f) {
            ws_sync_end(c, 0);
            return;
        }
        ws_conn_push(c, f);
        ws_conn_frame_unref(f);
    }
    if (c->close_code || s->row < s->rows || s->querying)
        return;
    ws_sync_drop_batch(s);
    if (s->db_done)
        ws_sync_finish(c);
    else
        ws_sync_query(c);
}
