#include "ws_sync.h"

#include "log.h"
#include "ws_conn.h"

#include <json-c/json.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows per query. */
#define WS_SYNC_BATCH 500
#define WS_SYNC_BATCH_STR "500"
/* The replay goes into the out-queue only while it is below these, so it never fills it. */
#define WS_SYNC_QUEUE_FRAMES 256
#define WS_SYNC_QUEUE_BYTES (1024 * 1024)
/*
 * Live message events held during one replay; more closes the connection.
 * With the replay's share of the queue they stay under WS_CONN_MAX_FRAMES and
 * WS_CONN_MAX_QUEUED, so releasing them never overflows it.
 */
#define WS_SYNC_MAX_LIVE 512
#define WS_SYNC_MAX_LIVE_BYTES (2 * 1024 * 1024)

static const char ws_sync_sql[] = "SELECT seq, id, msg FROM chatd_sync($1, $2, $3)";

struct ws_sync_live {
    struct ws_conn_frame *f; /* NULL once the replay sent the same message */
    uint64_t h;
};

struct ws_sync {
    long long last;             /* highest seq replayed so far (since, before any) */
    int querying;               /* a batch is on its way */
    int db_done;                /* the last batch was short: nothing more to read */
    struct ws_conn_frame **rep; /* the batch being fed to the out-queue */
    unsigned rep_n, rep_pos;
    struct ws_sync_live *live;
    unsigned live_n, live_cap;
    size_t live_bytes;
    unsigned replayed, dropped; /* for the log */
};

static void ws_sync_query(struct ws_conn *c);

static void ws_sync_drop_batch(struct ws_sync *s)
{
    for (unsigned i = s->rep_pos; i < s->rep_n; i++)
        ws_conn_frame_unref(s->rep[i]);
    free(s->rep);
    s->rep = NULL;
    s->rep_n = s->rep_pos = 0;
}

void ws_sync_free(struct ws_conn *c)
{
    struct ws_sync *s = c->sync;
    if (!s)
        return;
    c->sync = NULL;
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
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "{\"type\":\"synced\",\"last_seq\":%lld}", s->last);
    ws_conn_send(c, buf, (size_t)n);
    ws_sync_free(c);
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

/* {"type":"message", and the MessageRead object's members. */
static struct ws_conn_frame *ws_sync_frame(const char *json, size_t len)
{
    static const char head[] = "{\"type\":\"message\",";
    if (len < 2 || json[0] != '{')
        return NULL;
    return ws_conn_frame_cat(head, sizeof(head) - 1, json + 1, len - 1);
}

static int ws_sync_take_batch(struct ws_conn *c, PGresult *res)
{
    struct ws_sync *s = c->sync;
    int n = PQntuples(res);
    if (n && !(s->rep = calloc((size_t)n, sizeof(*s->rep))))
        return -1;
    for (int i = 0; i < n; i++) {
        struct ws_conn_frame *f =
            ws_sync_frame(PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2));
        if (!f)
            return -1;
        uint64_t h = ws_conn_hash(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
        ws_sync_forget_live(s, h);
        ws_conn_seen_add(c, h); /* a late live copy after the replay is skipped too */
        s->rep[s->rep_n++] = f;
        s->replayed++;
        s->last = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }
    s->db_done = n < WS_SYNC_BATCH;
    return 0;
}

static void ws_sync_on_batch(struct ws_conn *c, PGresult *res)
{
    struct ws_sync *s = c->sync;
    if (!s)
        return;
    s->querying = 0;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || ws_sync_take_batch(c, res) < 0) {
        if (res)
            log_warn("ws: sync failed (SQLSTATE %s)", PQresultErrorField(res, PG_DIAG_SQLSTATE));
        else
            log_warn("ws: sync failed: database unavailable");
        ws_sync_drop_batch(s);
        ws_sync_end(c, 0);
        return;
    }
    ws_sync_pump(c);
}

static void ws_sync_query(struct ws_conn *c)
{
    char since[32];
    snprintf(since, sizeof(since), "%lld", c->sync->last);
    const char *params[] = {c->user_id, since, WS_SYNC_BATCH_STR};
    c->sync->querying = 1;
    if (ws_conn_query(c, ws_sync_sql, 3, params, ws_sync_on_batch) < 0) {
        c->sync->querying = 0;
        ws_sync_end(c, 0);
    }
}

void ws_sync_pump(struct ws_conn *c)
{
    struct ws_sync *s = c->sync;
    if (!s || c->close_code)
        return;
    while (s->rep_pos < s->rep_n && !c->close_code && c->q_count < WS_SYNC_QUEUE_FRAMES &&
           c->q_bytes < WS_SYNC_QUEUE_BYTES) {
        struct ws_conn_frame *f = s->rep[s->rep_pos++];
        ws_conn_push(c, f);
        ws_conn_frame_unref(f);
    }
    if (c->close_code || s->rep_pos < s->rep_n || s->querying)
        return;
    ws_sync_drop_batch(s);
    if (s->db_done)
        ws_sync_end(c, 1);
    else
        ws_sync_query(c);
}
