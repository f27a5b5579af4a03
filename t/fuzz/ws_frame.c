/*
 * Fuzzes a client's WebSocket text frame in chat-wsd: the input is the frame's payload. It
 * goes the way ws_proto_on_receive() sends it on an authenticated connection: reassembled in
 * fragments (ws_conn_rx_append), held twice behind each other (ws_conn_hold), then
 * ws_proto_resume() parses each with the strict json-c parse and dispatches it by "type" to
 * the real commands (ws_cmd.c, ws_send.c, ws_sync.c) with their field validators, so the
 * second copy waits while the first one is in flight.
 *
 * wsd/ws_conn.c, ws_cmd.c, ws_send.c, ws_sync.c and ws_proto.c are #included with the few
 * calls that would need a live connection renamed to fakes: lws's writeable and timer
 * requests (no-ops), ws_db_query() and the Redis calls (queued here, then answered the way a
 * hash of the input picks: Postgres/Redis down, jobs that fail, empty results with the rate
 * counter under the limit, or over it). Once every job is answered the libuv loop must be
 * idle and the connection no longer busy.
 *
 * Invariants: every frame queued to the client and every payload published is a strict JSON
 * object with a string "type"; no job is left, no timer runs, nothing leaks.
 */
#include "fuzz.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <libwebsockets.h>
#include <uv.h>

#include "ws_bus.h"
#include "ws_db.h"

static int wf_on_writable(struct lws *wsi);
static void wf_set_timeout(struct lws *wsi, enum pending_timeout reason, int secs);
static void wf_set_timer_usecs(struct lws *wsi, lws_usec_t usecs);
static int wf_db_query(struct ws_db *d, unsigned lane, const char *sql, int nparams,
                       const char *const *params, ws_db_fn *fn, void *arg);
static int wf_bus_command(struct ws_bus *b, ws_bus_reply_fn *fn, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int wf_bus_publish(struct ws_bus *b, const char *channel, const char *payload, size_t len,
                          ws_bus_reply_fn *fn, void *arg);
struct ws_tail;
/* No tail runs here: replays are bounded by a fixed position. */
static long long wf_tail_pos(const struct ws_tail *t)
{
    (void)t;
    return 1000;
}

#define lws_callback_on_writable wf_on_writable
#define lws_set_timeout wf_set_timeout
#define lws_set_timer_usecs wf_set_timer_usecs
#define ws_db_query wf_db_query
#define ws_bus_command wf_bus_command
#define ws_bus_publish wf_bus_publish
#define ws_tail_pos wf_tail_pos
#include "../../wsd/ws_cmd.c"
#include "../../wsd/ws_conn.c"
#include "../../wsd/ws_proto.c"
#include "../../wsd/ws_send.c"
#include "../../wsd/ws_sync.c"
#undef lws_callback_on_writable
#undef lws_set_timeout
#undef lws_set_timer_usecs
#undef ws_db_query
#undef ws_bus_command
#undef ws_bus_publish
#undef ws_tail_pos

/* How the fake Postgres and Redis answer this input. */
enum wf_mode {
    WF_DOWN,    /* every query and command refused (-1) */
    WF_FAIL,    /* accepted, then answered NULL (the job could not run) */
    WF_EMPTY,   /* empty result sets; the rate counter at 1 */
    WF_LIMITED, /* empty result sets; the rate counter over the limit */
    WF_NMODES
};

/* A queued Postgres job or Redis command. */
struct wf_job {
    ws_db_fn *db;
    ws_bus_reply_fn *bus;
    void *arg;
};

#define WF_MAX_JOBS 64

static enum wf_mode wf_mode;
static struct wf_job wf_jobs[WF_MAX_JOBS];
static unsigned wf_head, wf_count;
static uv_loop_t wf_loop;
static struct ws_srv wf_srv;

static int wf_on_writable(struct lws *wsi)
{
    (void)wsi;
    return 0;
}

static void wf_set_timeout(struct lws *wsi, enum pending_timeout reason, int secs)
{
    (void)wsi;
    (void)reason;
    (void)secs;
}

static void wf_set_timer_usecs(struct lws *wsi, lws_usec_t usecs)
{
    (void)wsi;
    (void)usecs;
}

static int wf_queue(ws_db_fn *db, ws_bus_reply_fn *bus, void *arg)
{
    if (wf_mode == WF_DOWN || wf_count == WF_MAX_JOBS)
        return -1;
    wf_jobs[(wf_head + wf_count++) % WF_MAX_JOBS] = (struct wf_job){db, bus, arg};
    return 0;
}

static int wf_db_query(struct ws_db *d, unsigned lane, const char *sql, int nparams,
                       const char *const *params, ws_db_fn *fn, void *arg)
{
    (void)d;
    (void)lane;
    FUZZ_CHECK(sql && fn && nparams >= 0 && (nparams == 0 || params));
    for (int i = 0; i < nparams; i++)
        if (params[i]) /* each parameter is a readable C string (ASan checks the bytes) */
            FUZZ_CHECK(strlen(params[i]) <= WS_CONN_MAX_MSG);
    return wf_queue(fn, NULL, arg);
}

static int wf_bus_command(struct ws_bus *b, ws_bus_reply_fn *fn, void *arg, const char *fmt, ...)
{
    (void)b;
    FUZZ_CHECK(fmt);
    return fn ? wf_queue(NULL, fn, arg) : (wf_mode == WF_DOWN ? -1 : 0);
}

/* A strict JSON object with a string "type": what a client or a subscriber receives. */
static void wf_check_json(const char *s, size_t len)
{
    json_tokener *tok = json_tokener_new();
    FUZZ_CHECK(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, s, (int)len), *type;
    int complete = o && json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    if (!complete)
        fprintf(stderr, "frame: %.*s\n", (int)len, s);
    FUZZ_CHECK(complete && json_object_is_type(o, json_type_object));
    FUZZ_CHECK(json_object_object_get_ex(o, "type", &type) &&
               json_object_is_type(type, json_type_string));
    json_object_put(o);
}

static int wf_bus_publish(struct ws_bus *b, const char *channel, const char *payload, size_t len,
                          ws_bus_reply_fn *fn, void *arg)
{
    (void)b;
    FUZZ_CHECK(!strncmp(channel, "chatd:", 6) || !strncmp(channel, "chat:", 5));
    wf_check_json(payload, len);
    if (!fn)
        return wf_mode == WF_DOWN ? -1 : 0;
    return wf_queue(NULL, fn, arg);
}

/* Answers the queued jobs in order (answers may queue more) until none is left. */
static void wf_answer_all(void)
{
    for (int n = 0; wf_count; n++) {
        FUZZ_CHECK(n < 1000);
        struct wf_job j = wf_jobs[wf_head];
        wf_head = (wf_head + 1) % WF_MAX_JOBS;
        wf_count--;
        if (j.db) {
            PGresult *res = wf_mode == WF_FAIL ? NULL : PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
            j.db(j.arg, res);
            PQclear(res);
        } else {
            redisReply r = {.type = REDIS_REPLY_INTEGER,
                            .integer = wf_mode == WF_LIMITED ? 1000000 : 1};
            j.bus(j.arg, wf_mode == WF_FAIL ? NULL : &r);
        }
    }
}

/* The frames queued to the client; FUZZ_DEBUG=1 prints them (to write a corpus). */
static void wf_check_queue(const struct ws_conn *c)
{
    int debug = getenv("FUZZ_DEBUG") != NULL;
    if (debug)
        fprintf(stderr, "mode %d, close %d %s\n", (int)wf_mode, c->close_code,
                c->close_reason ? c->close_reason : "");
    for (unsigned i = 0; i < c->q_count; i++) {
        const struct ws_conn_frame *f = c->q[(c->q_head + i) % c->q_cap];
        if (debug)
            fprintf(stderr, "  %.*s\n", (int)f->len, (const char *)f->buf + LWS_PRE);
        wf_check_json((const char *)f->buf + LWS_PRE, f->len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!wf_srv.loop) {
        FUZZ_CHECK(uv_loop_init(&wf_loop) == 0);
        wf_srv.loop = &wf_loop;
        cfg.rate_messages_per_10s = 30;
        /* The `auth` frame verifies tokens; chat-wsd never starts without a key. */
        cfg.secret_key = "fuzz-secret-key-fuzz-secret-key-fuzz";
        log_set_level(LOG_ERROR);
    }
    if (size > WS_CONN_MAX_MSG)
        return 0; /* ws_proto_on_receive() closes with 1009 before any parse */
    uint32_t h = fuzz_hash(data, size);
    wf_mode = (enum wf_mode)(h % WF_NMODES);
    wf_head = wf_count = 0;

    struct ws_conn *c = calloc(1, sizeof(*c));
    FUZZ_CHECK(c);
    ws_conn_init(c, (struct lws *)&wf_srv /* never dereferenced: lws calls are fakes */, &wf_srv);
    memcpy(c->user_id, "0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f", 37);
    c->lane = 3;
    c->ready = 1;

    /* Fragments of 1 to 8 x 61 bytes, as lws hands them over. */
    size_t step = 61 * ((h >> 2) % 8 + 1);
    for (size_t off = 0; off < size; off += step)
        FUZZ_CHECK(ws_conn_rx_append(c, data + off, size - off < step ? size - off : step) == 0);
    FUZZ_CHECK(c->rx_len == size && (!size || !memcmp(c->rx, data, size)));
    FUZZ_CHECK(ws_conn_hold(c, size ? c->rx : "", size) == 0);
    FUZZ_CHECK(ws_conn_hold(c, size ? c->rx : "", size) == 0);
    ws_conn_rx_reset(c);
    ws_proto_resume(c);
    wf_answer_all();
    FUZZ_CHECK(c->close_code || (!c->busy && !c->held && !c->running));
    wf_check_queue(c);

    ws_conn_release(c);
    free(c);
    for (int i = 0; uv_loop_alive(&wf_loop); i++) {
        FUZZ_CHECK(i < 10); /* a timer still running: something waits for an answer */
        uv_run(&wf_loop, UV_RUN_NOWAIT);
    }
    return 0;
}
