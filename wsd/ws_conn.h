#ifndef CHATD_WS_CONN_H
#define CHATD_WS_CONN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct lws;
struct json_object;
struct ws_srv;
struct ws_hub_link;
struct ws_sync;

/* Largest client message, after reassembly of fragments (WS.md: over 64 KiB closes with 1009). */
#define WS_CONN_MAX_MSG (64 * 1024)
/*
 * Bytes a queued frame counts beyond its payload (the ring slot, the
 * allocation): many tiny frames weigh on the byte limits too.
 */
#define WS_CONN_FRAME_COST 64
/* Client messages waiting their turn (authentication or a command in flight). */
#define WS_CONN_MAX_HELD 64
#define WS_CONN_MAX_HELD_BYTES (1024 * 1024)
/* WS.md: more than 50 client messages in 10 s is over the limit. */
#define WS_CONN_RATE_N 50
#define WS_CONN_RATE_MS 10000
/* Message ids this connection already has, to skip when they come back from Redis. */
#define WS_CONN_SEEN_N 128
/* Conversations whose typing relay is throttled at once. */
#define WS_CONN_TYPING_N 8

/*
 * One outbound text frame, reference counted so that a fan-out to many
 * connections allocates the payload once. buf holds LWS_PRE bytes of headroom
 * for lws_write(), then len bytes of payload.
 */
struct ws_conn_frame {
    unsigned refs;
    size_t len;
    unsigned char buf[];
};

/*
 * A weak handle on a connection for callbacks that may outlive it (Postgres,
 * Redis): ws_conn_release() clears c, the last reference frees the ticket.
 */
struct ws_conn_ticket {
    struct ws_conn *c; /* NULL once the connection is gone */
    unsigned refs;
};

/* A client message waiting its turn. */
struct ws_conn_held {
    struct ws_conn_held *next;
    size_t len;
    char buf[]; /* len bytes and a NUL */
};

/*
 * The lws per-session data of a WebSocket connection: lws allocates it zeroed
 * and frees it; everything it points to is freed by ws_conn_release().
 */
struct ws_conn {
    struct lws *wsi;
    struct ws_srv *srv;
    struct ws_conn *prev, *next; /* in the ws_conn_list of the vhost */
    char user_id[37];            /* from the URL path, lower case; the token's subject */
    char req_id[65];             /* X-Request-Id from nginx, for the logs */
    unsigned lane;               /* Postgres lane of this user: their jobs stay in order */
    long long since;             /* ?since= to replay once authenticated; -1 none, -2 invalid */
    long long tail0;             /* the tail position at the handshake: the replay mark */
    int ready;                   /* authenticated, subscribed, counted online */
    int busy;                    /* a command is in flight: later messages wait */
    int running;                 /* inside ws_proto_resume() */
    struct ws_conn_ticket *ticket;

    char *rx; /* reassembly buffer, NUL-terminated, up to WS_CONN_MAX_MSG */
    size_t rx_len;
    size_t rx_cap;

    struct ws_conn_frame **q; /* ring of pending frames */
    unsigned q_head, q_count, q_cap;
    size_t q_bytes;      /* payload + WS_CONN_FRAME_COST per frame */
    uint64_t q_moved_ms; /* loop time of the last write, or of the push into an empty queue */

    struct ws_conn_held *held, *held_tail;
    unsigned held_count;
    size_t held_bytes;

    uint64_t rate_ms[WS_CONN_RATE_N]; /* arrival times of the last messages, a ring */
    unsigned rate_pos;
    uint64_t rate_warned_ms; /* when the "Rate limit exceeded" error went out; 0 never */

    uint64_t *seen;    /* WS_CONN_SEEN_N ws_conn_hash() of message ids, a ring; from the first */
    unsigned seen_pos; /* message on (an idle connection does without these 1 KiB) */

    struct {
        uint64_t key, ms;
    } typing[WS_CONN_TYPING_N];

    struct ws_hub_link *links; /* channels this connection receives (ws_hub.c) */
    struct ws_sync *sync;      /* a replay in progress (ws_sync.c) */

    int close_code;           /* non-zero: close at the next LWS_CALLBACK_TIMER */
    const char *close_reason; /* static string */

    uint64_t rx_ms; /* loop time of the last frame or PONG from the client (ws_proto_sweep) */
    int ping_state; /* 0; 1: a PING waits for WRITEABLE; 2: sent, no answer since */

    char sid[37];        /* login session of the token (ws_auth.c); "" for a token without sid */
    long long token_exp; /* unix s when that token expires: closes then unless renewed; 0 unset */
};

/* Every live connection of a vhost, for shutdown. */
struct ws_conn_list {
    struct ws_conn *head;
    unsigned count;
};

/* A frame holding a copy of data, one reference; NULL when out of memory. */
struct ws_conn_frame *ws_conn_frame_new(const void *data, size_t len);
/* A frame of a (alen bytes) then b (blen bytes), one reference; NULL when out of memory. */
struct ws_conn_frame *ws_conn_frame_cat(const char *a, size_t alen, const char *b, size_t blen);
/* Drops one reference; frees the frame with the last. NULL is fine. */
void ws_conn_frame_unref(struct ws_conn_frame *f);

/* Starts a connection: c is the zeroed lws session data. */
void ws_conn_init(struct ws_conn *c, struct lws *wsi, struct ws_srv *srv);
/*
 * Frees everything c owns and withdraws it from the hub and from presence;
 * c itself stays (lws frees it). Pending callbacks find their ticket empty.
 * Safe on a zeroed c.
 */
void ws_conn_release(struct ws_conn *c);

/* Sets the log context (request id, user) to c's; NULL clears it. */
void ws_conn_log(const struct ws_conn *c);

/*
 * A new reference on c's ticket (created on first use); NULL when memory is
 * short. Every reference is given back with ws_conn_ticket_take().
 */
struct ws_conn_ticket *ws_conn_ticket(struct ws_conn *c);
/* Drops the reference t; returns its connection, NULL when it is gone. Sets the log context. */
struct ws_conn *ws_conn_ticket_take(struct ws_conn_ticket *t);

/*
 * ws_db_query() on c's lane; fn runs only if c is still open, with res NULL
 * when the job could not run. Returns 0, or -1 (fn not called).
 */
typedef void ws_conn_db_fn(struct ws_conn *c, PGresult *res);
int ws_conn_query(struct ws_conn *c, const char *sql, int nparams, const char *const *params,
                  ws_conn_db_fn *fn);

/*
 * Appends len bytes to the reassembly buffer. Returns 0, or -1 when the
 * message would exceed WS_CONN_MAX_MSG or memory is short.
 */
int ws_conn_rx_append(struct ws_conn *c, const void *in, size_t len);
/* Forgets the reassembled message; gives back a large buffer. */
void ws_conn_rx_reset(struct ws_conn *c);

/* Queues a copy of a client message behind the others; -1 over the bounds or out of memory. */
int ws_conn_hold(struct ws_conn *c, const char *buf, size_t len);
/* The oldest held message, unlinked (the caller frees it), or NULL. */
struct ws_conn_held *ws_conn_unhold(struct ws_conn *c);

/*
 * Counts a client message arriving at now_ms against WS_CONN_RATE_N per
 * WS_CONN_RATE_MS. Returns 0 (under the limit), 1 (over: answer an error) or
 * 2 (over again after that error, within the window: close).
 */
int ws_conn_rate(struct ws_conn *c, uint64_t now_ms);

/* 1 when the typing relay for conversation key may go out at now_ms (at most 1 per second). */
int ws_conn_typing_ok(struct ws_conn *c, uint64_t key, uint64_t now_ms);

/* FNV-1a of s: the key of message ids and conversations. */
uint64_t ws_conn_hash(const char *s, size_t len);
/* 1 when the message id hash h was seen; else records it and returns 0. */
int ws_conn_seen(struct ws_conn *c, uint64_t h);
/* Records h as seen (a message this connection sent or had replayed). */
void ws_conn_seen_add(struct ws_conn *c, uint64_t h);

/*
 * 1 when a connection with q_bytes queued, whose queue last moved at
 * moved_ms, is too slow at now_ms: over WSD_OUT_QUEUE_MAX_BYTES, or over
 * WSD_SLOW_CLIENT_BYTES with nothing written for WSD_SLOW_CLIENT_SECS.
 */
int ws_conn_too_slow(size_t q_bytes, uint64_t moved_ms, uint64_t now_ms);

/*
 * Queues f (takes a new reference, the caller keeps its own) and asks lws for
 * WRITEABLE when the queue was empty (the writeable callback asks again while
 * frames remain). When ws_conn_too_slow() the connection is scheduled to
 * close with 1008 "Too slow" and -1 is returned. Frames for a closing
 * connection are dropped (0).
 */
int ws_conn_push(struct ws_conn *c, struct ws_conn_frame *f);
/* ws_conn_push() of a fresh copy of s; -1 when full or out of memory. */
int ws_conn_send(struct ws_conn *c, const char *s, size_t len);
/* Sends o serialised; takes ownership of o. */
void ws_conn_send_json(struct ws_conn *c, struct json_object *o);
/*
 * {"type":"error","message":message} plus "client_id" when client_id is not
 * NULL (a json string or null, referenced, not taken).
 */
void ws_conn_error(struct ws_conn *c, const char *message, struct json_object *client_id);
/* The oldest queued frame, or NULL. */
struct ws_conn_frame *ws_conn_peek(struct ws_conn *c);
/* Drops the oldest queued frame (after it was written). */
void ws_conn_pop(struct ws_conn *c);
/* Records that c's queue moved (frames went out) at now_ms. */
void ws_conn_moved(struct ws_conn *c, uint64_t now_ms);

/*
 * Schedules a close with code and a static reason: the queue is dropped, the
 * close frame goes out from the next LWS_CALLBACK_TIMER (see ws_conn.c), and
 * lws kills the connection after a few seconds if the peer never reads it.
 * Safe from any callback, including c's own. The first code wins.
 */
void ws_conn_close_later(struct ws_conn *c, int code, const char *reason);

void ws_conn_list_add(struct ws_conn_list *l, struct ws_conn *c);
/* Unlinks c; harmless when c is not linked. */
void ws_conn_list_remove(struct ws_conn_list *l, struct ws_conn *c);

#endif
